from datetime import datetime, timezone

from meter.cli import main

T0 = datetime(2022, 1, 1, tzinfo=timezone.utc).timestamp()


def test_estimate_prints_both_formulas(capsys):
    assert main(["estimate", "strubell", "--hours", "10", "--cpu-w", "100", "--gpu-w", "250", "--gpus", "4"]) == 0
    assert "17.38 kWh" in capsys.readouterr().out
    assert main(["estimate", "patterson", "--hours", "100", "--processors", "8", "--avg-power-w", "300",
                 "--pue", "1.1", "--t-per-mwh", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "0.264 MWh" in out and "0.132 tCO2e" in out and "km by car" in out


def test_schedule_from_run_folder(tmp_path, capsys):
    trace = tmp_path / "HAND_2022_hourly.csv"
    vals = [500, 400, 100, 450] + [500] * 44
    trace.write_text("timestamp,gco2_per_kwh\n" + "".join(
        f"{datetime.fromtimestamp(T0 + 3600 * i, tz=timezone.utc).isoformat()},{v}\n" for i, v in enumerate(vals)))
    run = tmp_path / "run"
    run.mkdir()
    (run / "energy.csv").write_text("t_unix,window,joules_cumulative,watts,source\n"
                                    f"{T0},train,0,1000,x\n{T0 + 1800},train,1800000,1000,x\n")
    assert main(["schedule", "--trace", str(trace), "--run", str(run), "--window", "3h"]) == 0
    out = capsys.readouterr().out
    # 0.5 kWh at 500 g/kWh now; best start in 3 h is hour 2 at 100 g/kWh: 80 % saved
    assert "| HAND | 250 | 2 | 50 | 80.0 |" in out


def test_bad_input_exits_nonzero(tmp_path, capsys):
    assert main(["schedule", "--trace", str(tmp_path), "--duration", "2h", "--power-w", "5"]) == 2
    assert "no CSV files" in capsys.readouterr().err


def test_check_runs(capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "estimate" in out and "read latency" in out


def test_schedule_reports_a_seven_minute_run_as_seven_minutes(tmp_path, capsys):
    trace = tmp_path / "HAND_2022_hourly.csv"
    vals = [500, 100, 100] + [450] * 45
    trace.write_text("timestamp,gco2_per_kwh\n" + "".join(
        f"{datetime.fromtimestamp(T0 + 3600 * i, tz=timezone.utc).isoformat()},{v}\n" for i, v in enumerate(vals)))
    run = tmp_path / "run"
    run.mkdir()
    t = T0 + 55 * 60  # 1 kW from 00:55 to 01:02: 5 min at 500 g/kWh, 2 min at 100
    (run / "energy.csv").write_text("t_unix,window,joules_cumulative,watts,source\n" + "".join(
        f"{t + 60 * i},train,{60_000 * i},1000,x\n" for i in range(8)))
    assert main(["schedule", "--trace", str(trace), "--run", str(run), "--window", "1h"]) == 0
    out = capsys.readouterr().out
    assert "job: 7.0 min active, 116.7 Wh; start 2022-01-01T00:55:00+00:00" in out and " 1 h," not in out
    # baseline (5 x 500 + 2 x 100)/60 kWh-g = 45 g; a 1 h delay runs 01:55-02:02 at 100: 11.67 g, 74.1 % saved
    assert "| HAND | 45 | 1 | 11.67 | 74.1 |" in out


def test_estimate_region_instead_of_intensity(capsys):
    assert main(["estimate", "patterson", "--hours", "100", "--processors", "8", "--avg-power-w", "300",
                 "--pue", "1.1", "--region", "FRA"]) == 0
    out = capsys.readouterr().out
    assert "67.39 g/kWh from table:FRA" in out and f"{0.264 * 0.06739:.6g} tCO2e" in out
    assert main(["estimate", "strubell", "--hours", "10", "--cpu-w", "100", "--region", "France"]) == 0
    assert f"{1.58 * 10 * 100 / 1000 * 0.06739 * 2.20462:.6g} lb CO2e" in capsys.readouterr().out


def test_every_option_has_help():
    import argparse

    from meter.cli import build_parser

    def walk(p):
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sp in a.choices.values():
                    yield from walk(sp)
            elif not isinstance(a, argparse._HelpAction):
                yield p.prog, a

    missing = [f"{prog} {a.dest}" for prog, a in walk(build_parser()) if not a.help]
    assert not missing
