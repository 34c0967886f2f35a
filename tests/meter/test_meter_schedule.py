import itertools
from datetime import datetime, timezone

import numpy as np
import pytest

from meter.intensity import TraceIntensity
from meter.schedule import Plan, Profile, flexible_start, parse_hours, pause_resume, plan, simulate

T0 = datetime(2022, 1, 1, tzinfo=timezone.utc).timestamp()
# hand-made hourly trace: dirty at first, a clean valley at hours 5-6, a clean hour at 9
VALUES = [500, 400, 450, 300, 350, 100, 120, 420, 380, 90, 600, 600]


def _trace():
    return TraceIntensity(T0 + 3600.0 * np.arange(len(VALUES)), np.array(VALUES, float), "HAND")


def test_flexible_start_finds_the_clean_valley():
    res = simulate(Profile.planned(2, 1000.0), _trace(), T0, window_h=6, span_factor=1.0)
    assert res.baseline_g == pytest.approx(1.0 * 500 + 1.0 * 400)
    assert res.fs_delay_h == 5 and res.fs_g == pytest.approx(100 + 120)
    assert res.fs_saving == pytest.approx(1 - 220 / 900)


def test_pause_and_resume_picks_cleanest_hours_in_span():
    res = simulate(Profile.planned(3, 1000.0), _trace(), T0, window_h=0, span_factor=10 / 3)  # span 10 h
    assert list(res.pr_slots) == [5, 6, 9]
    assert res.pr_g == pytest.approx(100 + 120 + 90)
    assert res.fs_delay_h == 0 and res.fs_g == res.baseline_g


def test_dp_matches_brute_force_for_uneven_profiles():
    rng = np.random.default_rng(0)
    for _ in range(100):
        d = int(rng.integers(1, 5))
        s = d + int(rng.integers(0, 4))
        kwh, inten = rng.random(d), rng.random(s) * 500
        slots, g = pause_resume(kwh, inten)
        brute = min(np.dot(kwh, inten[list(c)]) for c in itertools.combinations(range(s), d))
        assert g == pytest.approx(brute) and np.all(np.diff(slots) > 0)
        assert np.dot(kwh, inten[slots]) == pytest.approx(g)


def test_flexible_start_all_delays():
    delay, grams = flexible_start(np.array([1.0, 2.0]), np.array([3.0, 1.0, 1.0, 5.0]), window_h=2)
    assert list(grams) == [3 + 2, 1 + 2, 1 + 10] and delay == 1


def test_profile_from_energy_csv_removes_gaps(tmp_path):
    p = tmp_path / "energy.csv"
    rows = ["t_unix,window,joules_cumulative,watts,source"]
    t, e = T0, 0.0
    for _ in range(91):  # 90 min at 2 kW, sampled every minute
        rows.append(f"{t},train,{e},2000,x")
        t, e = t + 60, e + 2000 * 60
    t += 5 * 3600  # killed for 5 hours, then resumed
    for _ in range(31):  # 30 more minutes
        rows.append(f"{t},train,{e},2000,x")
        t, e = t + 60, e + 2000 * 60
    p.write_text("\n".join(rows) + "\n")
    prof = Profile.from_energy_csv(p)
    assert prof.hours == 2 and prof.start_unix == T0
    assert prof.hourly_kwh == pytest.approx([2.0, 2.0])


def test_planned_partial_hour_and_parse():
    assert Profile.planned(2.5, 400).hourly_kwh == pytest.approx([0.4, 0.4, 0.2])
    assert parse_hours("24h") == 24 and parse_hours("90m") == 1.5 and parse_hours("2d") == 48
    with pytest.raises(ValueError, match="duration"):
        parse_hours("soon")


def test_plan_for_the_trainer():
    pl = plan(_trace(), T0, 3, mode="pause_resume", span_factor=10 / 3)
    assert pl.intervals == [(T0 + 5 * 3600, T0 + 7 * 3600), (T0 + 9 * 3600, T0 + 10 * 3600)]
    assert pl.should_pause(T0) and pl.next_allowed_time(T0) == T0 + 5 * 3600
    assert not pl.should_pause(T0 + 6 * 3600) and pl.next_allowed_time(T0 + 6 * 3600) == T0 + 6 * 3600
    assert pl.should_pause(T0 + 8 * 3600) and pl.next_allowed_time(T0 + 8 * 3600) == T0 + 9 * 3600
    assert pl.next_allowed_time(T0 + 11 * 3600) is None
    fs = plan(_trace(), T0, 2, mode="flexible_start", window_h=6)
    assert fs == Plan([(T0 + 5 * 3600, T0 + 7 * 3600)])
    with pytest.raises(ValueError, match="mode"):
        plan(_trace(), T0, 2, mode="later")


def test_config_option_plan_and_wait(tmp_path):
    from meter import MeterConfig
    from meter.schedule import plan_from_config, wait_until_allowed

    p = tmp_path / "HAND_2022_hourly.csv"
    p.write_text("timestamp,gco2_per_kwh\n" + "".join(
        f"{datetime.fromtimestamp(T0 + 3600 * i, tz=timezone.utc).isoformat()},{v}\n" for i, v in enumerate(VALUES)))
    with pytest.raises(ValueError, match="schedule_mode"):
        MeterConfig(schedule_mode="pause_resume")  # needs a trace
    assert plan_from_config(MeterConfig(), T0, 2) is None
    cfg = MeterConfig(intensity_trace=str(p), schedule_mode="flexible_start", schedule_window_h=6)
    pl = plan_from_config(cfg, T0, 2)
    assert pl.intervals == [(T0 + 5 * 3600, T0 + 7 * 3600)]
    clock, slept = [T0], []

    def sleep(s):
        slept.append(s)
        clock[0] += s

    assert wait_until_allowed(pl, now_fn=lambda: clock[0], sleep_fn=sleep)
    assert clock[0] == T0 + 5 * 3600 and max(slept) <= 60
    assert not wait_until_allowed(pl, now_fn=lambda: T0, max_wait_s=3600)  # would wait 5 h: let the caller exit


def test_dp_with_a_partial_last_hour_matches_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(100):
        d = int(rng.integers(1, 5))
        s = d + int(rng.integers(0, 4))
        kwh, inten, last = rng.random(d), rng.random(s) * 500, rng.random(s) * 500
        slots, g = pause_resume(kwh, inten, last)
        brute = min(np.dot(kwh[:-1], inten[list(c[:-1])]) + kwh[-1] * last[c[-1]]
                    for c in itertools.combinations(range(s), d))
        assert g == pytest.approx(brute) and np.all(np.diff(slots) > 0)


def test_partial_hour_is_charged_its_own_minutes():
    # 30 min at 1 kW from 00:45: 15 min at 500 g/kWh, 15 min at 400 (not a whole hour of either)
    res = simulate(Profile.planned(0.5, 1000.0), _trace(), T0 + 2700, window_h=5, span_factor=1.0)
    assert res.hours == 1 and res.baseline_g == pytest.approx(0.25 * 500 + 0.25 * 400)
    # best delay 5 h: 05:45-06:15, 15 min at 100 and 15 min at 120
    assert res.fs_delay_h == 5 and res.fs_g == pytest.approx(0.25 * 100 + 0.25 * 120)
