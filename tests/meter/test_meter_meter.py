import csv
import time

import pytest
from omegaconf import OmegaConf

from meter import Measurement, Meter, MeterConfig
from meter.sources import SOURCES
from meter.sources.base import EnergySource

WATTS = 100.0


class FakeCpu(EnergySource):
    """A 100 W CPU counter on the monotonic clock."""

    name = "fake"

    def __init__(self, update_period_s=0.001):
        self.t0 = time.perf_counter()
        self.update_period_s = update_period_s

    def keys(self):
        return ["cpu/measured:rapl"]

    def read(self):
        return {"cpu/measured:rapl": WATTS * (time.perf_counter() - self.t0)}


@pytest.fixture
def fake(monkeypatch):
    state = {"period": 0.001}
    monkeypatch.setitem(SOURCES._items, "fake", lambda cfg, want: FakeCpu(state["period"]))
    return state


def _cfg(**kw):
    base = dict(sources=["fake", "estimate"], intensity_g_per_kwh=500.0, sample_period_s=0.01)
    return MeterConfig(**{**base, **kw})


def test_window_energy_carbon_and_methods(fake, tmp_path):
    meter = Meter(_cfg(), out_dir=tmp_path)
    with meter:
        time.sleep(0.05)  # energy before the window must not count
        with meter.window("train") as w:
            time.sleep(0.05)
    assert w.method == "measured:rapl+estimated:ram_rss"  # CPU measured, so never estimated; RAM estimated
    cpu = w.components["cpu/measured:rapl"]
    # The counter is read a moment before/after the window's own clock: allow 10 ms of scheduling skew, not 2%.
    assert cpu == pytest.approx(WATTS * w.seconds, abs=WATTS * 0.01)
    assert w.g_co2e == pytest.approx(w.joules / 3.6e6 * 500.0, rel=1e-9)
    assert w.intensity_g_per_kwh == pytest.approx(500.0) and w.intensity_source == "user"
    assert w.start_unix < w.end_unix and w.seconds >= 0.05
    assert meter.totals().joules >= w.joules


def test_nested_windows_csv_and_resume_appends(fake, tmp_path):
    meter = Meter(_cfg(), out_dir=tmp_path)
    with meter:
        with meter.window("train") as outer:
            time.sleep(0.03)
            with meter.window("eval") as inner:
                time.sleep(0.05)
    assert inner.joules < outer.joules and inner.seconds < outer.seconds
    rows = list(csv.DictReader((tmp_path / "energy.csv").open()))
    assert list(rows[0]) == ["t_unix", "window", "joules_cumulative", "watts", "source"]
    assert {"train", "train/eval"} <= {r["window"] for r in rows}
    cum = [float(r["joules_cumulative"]) for r in rows]
    assert cum == sorted(cum)
    with Meter(_cfg(), out_dir=tmp_path):  # a resumed run appends and continues the cumulative count
        time.sleep(0.03)
    lines = (tmp_path / "energy.csv").read_text().splitlines()
    assert sum(line.startswith("t_unix") for line in lines) == 1
    assert float(lines[-1].split(",")[2]) >= cum[-1]


def test_decorator_and_short_window_flag(fake):
    fake["period"] = 1.0  # a counter updated once a second
    meter = Meter(_cfg())
    seen = []

    @meter.window("step")
    def step():
        seen.append(meter._windows[-1])

    with meter:
        step()
        step()
        with meter.window("tiny") as w:
            pass
    assert seen == ["step", "step"]
    assert w.short_window and w.row()["energy/short_window"] is True


def test_disabled_meter_times_wall_clock_only(tmp_path):
    meter = Meter(MeterConfig(enabled=False), out_dir=tmp_path)
    with meter, meter.window("train") as w:
        time.sleep(0.02)
    assert w.method == "disabled" and w.joules == 0.0 and w.seconds >= 0.02
    assert not (tmp_path / "energy.csv").exists()
    assert meter.totals().method == "disabled"


def test_enabled_window_outside_with_is_an_error(fake):
    with pytest.raises(RuntimeError, match="with meter"):
        with Meter(_cfg()).window("x"):
            pass
    with pytest.raises(ValueError, match="window name"):
        Meter(_cfg()).window("a/b")


def test_resume_sum_counts_once(fake):
    with Meter(_cfg()) as meter:
        with meter.window("train") as a:
            time.sleep(0.01)
        saved = a.to_dict()
    with Meter(_cfg()) as meter:
        with meter.window("train") as b:
            time.sleep(0.01)
    total = Measurement.from_dict(saved) + b
    assert total.joules == pytest.approx(a.joules + b.joules)
    assert total.seconds == pytest.approx(a.seconds + b.seconds)


def test_config_validation_and_hydra_structured():
    for kw, key in [({"pue": 0.5}, "meter.pue"), ({"sources": ["nope"]}, "meter.sources"),
                    ({"sample_period_s": 0}, "meter.sample_period_s"), ({"intensity_kind": "x"}, "intensity_kind"),
                    ({"cpu_w_per_core_max": 0.1}, "cpu_w_per_core_max"), ({"intensity_trace": "/no/such.csv"},
                                                                            "intensity_trace")]:
        with pytest.raises(ValueError, match=key):
            MeterConfig(**kw)
    cfg = OmegaConf.to_object(OmegaConf.structured(MeterConfig))
    assert cfg == MeterConfig()


class FakeTime:
    """Stands in for the `time` module inside meter.meter: wall clock set by the test."""

    def __init__(self, t):
        self.t = t

    def time(self):
        return self.t

    def perf_counter(self):
        return self.t

    def monotonic(self):
        return time.monotonic()


def test_window_carbon_follows_the_trace_across_hours(monkeypatch, tmp_path):
    from datetime import datetime, timezone

    import meter.meter as meter_mod

    t0 = datetime(2022, 1, 1, tzinfo=timezone.utc).timestamp()
    trace = tmp_path / "T_2022_hourly.csv"
    trace.write_text("timestamp,gco2_per_kwh\n" + "".join(
        f"{datetime.fromtimestamp(t0 + 3600 * i, tz=timezone.utc).isoformat()},{v}\n"
        for i, v in enumerate([100, 200, 400, 50])))
    clock = FakeTime(t0 + 1800)  # 00:30

    class Kilowatt(EnergySource):
        name = "kw"

        def keys(self):
            return ["cpu/measured:rapl"]

        def read(self):
            return {"cpu/measured:rapl": 1000.0 * (clock.t - t0)}

    monkeypatch.setitem(SOURCES._items, "kw", lambda cfg, want: Kilowatt())
    monkeypatch.setattr(meter_mod, "time", clock)
    cfg = MeterConfig(sources=["kw"], intensity_trace=str(trace), sample_period_s=60, pue=1.2)
    with Meter(cfg) as meter:
        with meter.window("train") as w:
            for t in (1.75, 2.25):  # ledger updates straddle the hour boundaries (01:45, then 02:15)
                clock.t = t0 + 3600 * t
                meter._tick()
    hand = (0.5 * 100 + 1.0 * 200 + 0.25 * 400) * 1.2  # kWh x g/kWh x PUE
    assert w.joules == pytest.approx(1.75 * 3.6e6)
    assert w.g_co2e == pytest.approx(hand, rel=1e-9)
    assert w.intensity_g_per_kwh == pytest.approx(hand / 1.2 / 1.75)
    assert w.intensity_source == "trace:T_2022_hourly.csv"


def test_emissions_csv_written_at_stop(fake, tmp_path):
    from meter.exports import EMISSIONS_COLUMNS

    with Meter(_cfg(emissions_csv=True), out_dir=tmp_path) as meter, meter.window("w"):
        time.sleep(0.02)
    rows = list(csv.DictReader((tmp_path / "emissions.csv").open()))
    assert list(rows[0]) == EMISSIONS_COLUMNS and float(rows[0]["energy_consumed"]) > 0
