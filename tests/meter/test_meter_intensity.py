import logging
from datetime import datetime, timezone

import pytest

from meter import MeterConfig
from meter.intensity import (
    WORLD_AVERAGE_G_PER_KWH,
    ConstantIntensity,
    TraceIntensity,
    resolve,
    table_lookup,
)


def _ts(s):
    return datetime.fromisoformat(s).replace(tzinfo=timezone.utc).timestamp()


def _write(path, rows):
    path.write_text("timestamp,gco2_per_kwh\n" + "".join(f"{t},{v}\n" for t, v in rows))
    return path


@pytest.fixture
def trace(tmp_path):
    rows = [("2022-01-01 00:00:00+00:00", 100), ("2022-01-01 01:00:00+00:00", 200),
            ("2022-01-01 02:00:00+00:00", 400), ("2022-01-01 03:00:00+00:00", 50)]
    return TraceIntensity.from_csv(_write(tmp_path / "X_2022_hourly.csv", rows))


def test_run_crossing_hour_boundaries_equals_hand_sum(trace):
    # constant 1 kW from 00:30 to 02:15: 0.5 h @100 + 1 h @200 + 0.25 h @400
    t0, t1 = _ts("2022-01-01T00:30:00"), _ts("2022-01-01T02:15:00")
    joules = 1000.0 * (t1 - t0)
    hand = 0.5 * 100 + 1.0 * 200 + 0.25 * 400  # kWh x g/kWh
    assert trace.grams(joules, t0, t1) == pytest.approx(hand, rel=1e-12)
    assert trace.grams(joules, t0, t1, pue=1.5) == pytest.approx(1.5 * hand, rel=1e-12)
    assert not trace.shifted


def test_gaps_filled_and_reported(tmp_path, caplog):
    rows = [("2022-01-01T00:00:00Z", 100), ("2022-01-01T01:00:00Z", ""), ("2022-01-01T02:00:00Z", 300),
            ("2022-01-01T04:00:00Z", 500)]  # 01:00 empty, 03:00 missing
    with caplog.at_level(logging.WARNING):
        tr = TraceIntensity.from_csv(_write(tmp_path / "g.csv", rows))
    assert list(tr.values) == [100, 200, 300, 400, 500]
    assert tr.filled == 2 and "2 missing values filled" in tr.source
    assert "2 missing values filled by linear interpolation" in caplog.text


def test_outside_trace_shift_year_or_strict(trace, tmp_path):
    t0 = _ts("2026-01-01T01:00:00")
    assert trace.mean(t0, t0 + 3600) == pytest.approx(200.0)
    assert trace.shifted and "mapped onto 2022" in trace.source
    strict = TraceIntensity.from_csv(trace_path := tmp_path / "X_2022_hourly.csv", align="strict")
    assert strict.name == trace_path.name
    with pytest.raises(ValueError, match="trace_align"):
        strict.mean(t0, t0 + 3600)


def test_bad_trace_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        TraceIntensity.from_csv(tmp_path / "missing.csv")
    p = tmp_path / "bad.csv"
    p.write_text("when,value\n2022-01-01,1\n")
    with pytest.raises(ValueError, match="header"):
        TraceIntensity.from_csv(p)
    _write(p, [("2022-01-01T00:00:00", -5)])
    with pytest.raises(ValueError, match="bad.csv:2"):
        TraceIntensity.from_csv(p)


def test_table_and_priority(trace, tmp_path):
    g, src = table_lookup("gcp:us-central1")
    assert g == 105.4 and "Google" in src
    assert table_lookup("France")[0] == table_lookup("fra")[0] == 67.39
    with pytest.raises(ValueError, match="meter.region"):
        MeterConfig(region="Atlantis")
    world = resolve(MeterConfig())
    assert isinstance(world, ConstantIntensity) and world.value == WORLD_AVERAGE_G_PER_KWH
    assert "FLAGGED" in world.source
    assert resolve(MeterConfig(region="SWE")).source.startswith("table:SWE")
    assert resolve(MeterConfig(region="SWE", intensity_g_per_kwh=123.0)).source == "user"
    p = tmp_path / "X_2022_hourly.csv"
    assert resolve(MeterConfig(intensity_g_per_kwh=123.0, intensity_trace=str(p))).source.startswith("trace:")
    assert resolve(MeterConfig(intensity_g_per_kwh=9.0, intensity_kind="marginal")).kind == "marginal"
