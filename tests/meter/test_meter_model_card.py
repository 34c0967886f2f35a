"""`python -m meter model-card`: the Hugging Face co2_eq_emissions block summed over a run or a sweep."""

import json

import pytest
import yaml

from meter.cli import main


def _row(g, j, method="measured:rapl", est=0.0, source="table:FRA (Our World in Data)", **extra):
    return {"carbon/g_co2e": g, "energy/joules": j, "energy/method": method, "energy/estimated_joules": est,
            "carbon/intensity_source": source, "carbon/pue": 1.0, **extra}


def _run(folder, records, status="completed", emissions_csv=None):
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"status": status, "error": None, "records": records}))
    if emissions_csv:
        (folder / "emissions.csv").write_text("cpu_model,gpu_model\n" + emissions_csv + "\n")
    return folder


def _card(capsys, *args):
    assert main(["model-card", *map(str, args)]) == 0
    out = capsys.readouterr()
    return yaml.safe_load(out.out)["co2_eq_emissions"], out.err


def test_one_run_measured(tmp_path, capsys):
    run = _run(tmp_path / "run", [_row(1.5, 100.0), _row(2.25, 200.0)], emissions_csv="AMD EPYC,1 x NVIDIA H200")
    card, err = _card(capsys, run, "--training-type", "fine-tuning")
    assert card["emissions"] == pytest.approx(3.75)  # grams
    assert card["training_type"] == "fine-tuning" and card["geographical_location"] == "FRA"
    assert card["hardware_used"] == "AMD EPYC; 1 x NVIDIA H200"
    assert "energy measured" in card["source"] and "ESTIMATED" not in card["source"]
    assert "2 records from 1 run(s)" in err


def test_sweep_sums_runs_and_says_what_was_estimated(tmp_path, capsys):
    _run(tmp_path / "0_seed=0", [_row(1.0, 100.0, "estimated:cpu_time_linear", est=100.0)])
    _run(tmp_path / "1_seed=1", [_row(2.0, 300.0, "measured:rapl+estimated:ram_rss", est=50.0,
                                      **{"train/g_co2e": 4.0, "train/joules": 600.0, "train/method": "measured:rapl"})])
    _run(tmp_path / "2_seed=2", [_row(0.5, 0.0)], status="failed")
    card, err = _card(capsys, tmp_path, "--location", "Paris, France", "--hardware", "2 vCPU")
    assert card["emissions"] == pytest.approx(1.0 + 2.0 + 4.0 + 0.5)
    assert card["source"].startswith("leanlab meter: 3 records of 3 run(s); energy ESTIMATED for 15 % of 1000 J")
    assert (card["geographical_location"], card["hardware_used"]) == ("Paris, France", "2 vCPU")
    assert "1 of them failed" in err and "ESTIMATED" in err


def test_trace_location_and_strict_yaml_quoting(tmp_path, capsys):
    run = _run(tmp_path / "r", [_row(1.0, 1.0, source="trace:CISO_2022_hourly.csv (it's \"odd\": yes)")])
    card, err = _card(capsys, run)
    assert card["geographical_location"] == "CISO_2022_hourly.csv (intensity trace)"
    assert "(it's \"odd\": yes)" in card["source"]
    assert "hardware_used is empty" in err


@pytest.mark.parametrize("setup, words", [
    (lambda p: None, "not a folder"),
    (lambda p: p.mkdir(), "no summary.json"),
    (lambda p: (p.mkdir(), (p / "summary.json").write_text("{trunc")), "summary.json: not a run summary"),
])
def test_bad_folder_is_one_error_line(tmp_path, capsys, setup, words):
    setup(tmp_path / "x")
    assert main(["model-card", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert words in err and str(tmp_path / "x") in err and len(err.strip().splitlines()) == 1
