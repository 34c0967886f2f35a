"""Carbon-aware scheduling on an hourly intensity trace (Dodge et al. 2022, "Measuring the Carbon Intensity of
AI in Cloud Instances", FAccT): simulate what a job would have emitted had it started later or paused.

- Flexible Start: delay the start by d in 0..W hours, keep the job contiguous; choose the d with least CO2e.
- Pause and Resume: run the job's hours, in order, in any hours of [start, start + F x duration); with a flat
  power profile that is the lowest-intensity hours of the span; with a recorded profile, an exact dynamic
  programme assigns each job-hour to an increasing slot.
Energy is binned per hour of the job's *active* time (gaps of a killed-and-resumed run are removed). For the
trainer, `Plan` turns either choice into allowed wall-clock intervals: `should_pause(now)` and
`next_allowed_time(now)` are cheap enough to call between steps (with checkpoint/resume around a pause).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from meter.intensity import TraceIntensity

HOUR = 3600.0


@dataclass
class Profile:
    """Energy per hour of a job's active time, kWh; `hourly_kwh[k]` is spent in the job's k-th hour, the last
    of which may be partial: the job is `active_s` long (None = whole hours)."""

    hourly_kwh: np.ndarray
    start_unix: float | None = None
    active_s: float | None = None

    @property
    def hours(self) -> int:
        """Hourly bins the job touches (the trace's resolution): ceil(active time)."""
        return len(self.hourly_kwh)

    @property
    def seconds(self) -> float:
        return self.active_s if self.active_s is not None else HOUR * self.hours

    @property
    def last_bin_s(self) -> float:
        return self.seconds - HOUR * (self.hours - 1)

    @classmethod
    def planned(cls, duration_h: float, power_w: float) -> Profile:
        if not (duration_h > 0 and math.isfinite(duration_h)):
            raise ValueError(f"duration {duration_h!r} h: must be > 0")
        if not (power_w >= 0 and math.isfinite(power_w)):
            raise ValueError(f"power {power_w!r} W: must be >= 0")
        n = math.ceil(duration_h - 1e-9)
        kwh = np.full(n, power_w / 1000.0)
        kwh[-1] *= duration_h - (n - 1)  # last, partial hour
        return cls(kwh, active_s=duration_h * HOUR)

    @classmethod
    def from_energy_csv(cls, path: str | Path, gap_factor: float = 10.0) -> Profile:
        """Read a run's `energy.csv`; sample gaps longer than gap_factor x the median period are removed."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: no energy.csv (a run folder from `Meter(out_dir=...)` has one)")
        t, e = [], []
        with path.open(newline="") as f:
            for r in csv.DictReader(f):
                t.append(float(r["t_unix"]))
                e.append(float(r["joules_cumulative"]))
        if len(t) < 2:
            raise ValueError(f"{path}: fewer than two samples; nothing to schedule")
        t, e = np.array(t), np.array(e)
        dt, de = np.diff(t), np.clip(np.diff(e), 0.0, None)
        keep = dt <= gap_factor * np.median(dt)
        active_end = np.cumsum(np.where(keep, dt, 0.0))  # active seconds at the end of each interval
        hours = max(1, math.ceil(active_end[-1] / HOUR - 1e-9))
        kwh = np.zeros(hours)
        idx = np.minimum((np.maximum(active_end - 1e-9, 0) // HOUR).astype(int), hours - 1)
        np.add.at(kwh, idx[keep], de[keep] / 3.6e6)
        return cls(kwh, start_unix=float(t[0]), active_s=float(active_end[-1]))


def flexible_start(kwh: np.ndarray, intensity: np.ndarray, window_h: int) -> tuple[int, np.ndarray]:
    """(best delay in hours, grams for each delay 0..window_h); `intensity` covers >= window_h + len(kwh) hours."""
    d = len(kwh)
    if len(intensity) < window_h + d:
        raise ValueError(f"intensity covers {len(intensity)} h; need {window_h + d}")
    grams = np.correlate(intensity[: window_h + d], kwh, mode="valid")
    return int(np.argmin(grams)), grams


def pause_resume(kwh: np.ndarray, intensity: np.ndarray, last: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """(slot of each job-hour, grams): the least-CO2e order-preserving placement of job hours into the span.

    `last[h]`, if given, is the intensity the job's last (partial) hour gets in slot h (the mean over its
    part of the slot), instead of `intensity[h]`."""
    d, s = len(kwh), len(intensity)
    if s < d:
        raise ValueError(f"span of {s} h is shorter than the job ({d} h)")
    if last is None and np.allclose(kwh, kwh[0]):  # flat profile: the d cleanest hours, in time order
        slots = np.sort(np.argsort(intensity, kind="stable")[:d])
        return slots, float(np.dot(kwh, intensity[slots]))

    def layer(k: int) -> np.ndarray:
        return (last if last is not None and k == d - 1 else intensity)[k : k + width]

    # dp[h] = least grams for job-hours 0..k with job-hour k in slot h (slots k .. s-d+k)
    width = s - d + 1
    dp = kwh[0] * layer(0)
    choice = np.zeros((d, width), dtype=int)
    for k in range(1, d):
        run_min = np.minimum.accumulate(dp)  # best previous slot <= h-1, in the shifted frame
        arg = np.zeros(width, dtype=int)
        best = 0
        for h in range(width):  # argmin of the running minimum, O(width)
            if dp[h] < dp[best]:
                best = h
            arg[h] = best
        dp = kwh[k] * layer(k) + run_min
        choice[k] = arg
    slots = np.zeros(d, dtype=int)
    h = int(np.argmin(dp))
    for k in range(d - 1, -1, -1):
        slots[k] = h + k
        h = choice[k][h]
    return slots, float(dp.min())


@dataclass
class Result:
    region: str
    hours: int
    baseline_g: float
    fs_g: float
    fs_delay_h: int
    pr_g: float
    pr_slots: np.ndarray = field(repr=False)
    window_h: int = 24
    span_h: int = 0

    # Starting now is a feasible choice of both, so a saving below 0 is float round-off (printed "-0.0" otherwise).
    @property
    def fs_saving(self) -> float:
        return max(0.0, 1 - self.fs_g / self.baseline_g) if self.baseline_g > 0 else 0.0

    @property
    def pr_saving(self) -> float:
        return max(0.0, 1 - self.pr_g / self.baseline_g) if self.baseline_g > 0 else 0.0


def simulate(profile: Profile, trace: TraceIntensity, start_unix: float, window_h: int = 24,
             span_factor: float = 2.0) -> Result:
    """Baseline (start now), Flexible Start (delay <= window_h) and Pause and Resume (span <= span_factor x D).

    Delays and pauses move the job by whole hours (the trace's resolution); each hour of the job is charged the
    trace's mean over the time it actually runs there, so a 7-minute job gets 7 minutes of intensity."""
    if window_h < 0:
        raise ValueError(f"window {window_h!r} h: must be >= 0")
    if span_factor < 1:
        raise ValueError(f"span_factor {span_factor!r}: must be >= 1 (the span includes the job itself)")
    d = profile.hours
    span = max(d, int(math.floor(span_factor * profile.seconds / HOUR + 1e-9)))
    n = max(window_h + d, span)
    intensity = trace.hourly(start_unix, n)  # hours from the job's own start, not from the clock hour
    kwh = profile.hourly_kwh
    last = None
    if profile.last_bin_s < HOUR - 1e-6:  # the last hour is partial: charge it the mean over its own length
        a = start_unix + HOUR * np.arange(n)
        last = np.array([trace.integral(t, t + profile.last_bin_s) for t in a]) / profile.last_bin_s
    _, fs = flexible_start(kwh, intensity, window_h)
    if last is not None:
        fs = fs + kwh[-1] * (last[d - 1 : d + window_h] - intensity[d - 1 : d + window_h])
    delay = int(np.argmin(fs))
    slots, pr = pause_resume(kwh, intensity[:span], None if last is None else last[:span])
    return Result(trace.name, d, float(fs[0]), float(fs[delay]), delay, pr, slots, window_h, span)


@dataclass
class Plan:
    """Allowed wall-clock intervals [(start_unix, end_unix)], sorted; outside them a job should pause."""

    intervals: list[tuple[float, float]]

    def should_pause(self, now: float) -> bool:
        return not any(a <= now < b for a, b in self.intervals)

    def next_allowed_time(self, now: float) -> float | None:
        """`now` if allowed, else the start of the next allowed interval, else None (plan exhausted)."""
        for a, b in self.intervals:
            if now < b:
                return max(a, now)
        return None


def _merge_hours(start: float, slots) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for h in slots:
        a = start + HOUR * int(h)
        if out and abs(out[-1][1] - a) < 1e-6:
            out[-1] = (out[-1][0], a + HOUR)
        else:
            out.append((a, a + HOUR))
    return out


def plan(trace: TraceIntensity, now: float, duration_h: float, mode: str = "flexible_start",
         window_h: int = 24, span_factor: float = 2.0) -> Plan:
    """A Plan for a job of `duration_h` hours planned at `now` (hour-aligned from `now`)."""
    profile = Profile.planned(duration_h, 1.0)
    res = simulate(profile, trace, now, window_h, span_factor)
    if mode == "flexible_start":
        return Plan(_merge_hours(now, range(res.fs_delay_h, res.fs_delay_h + profile.hours)))
    if mode == "pause_resume":
        return Plan(_merge_hours(now, res.pr_slots))
    raise ValueError(f"schedule mode {mode!r}: allowed flexible_start, pause_resume")


def parse_hours(text: str) -> float:
    """'24h', '90m', '2d' or a bare number of hours."""
    s = str(text).strip().lower()
    units = {"h": 1.0, "m": 1 / 60, "d": 24.0}
    try:
        return float(s[:-1]) * units[s[-1]] if s and s[-1] in units else float(s)
    except ValueError:
        raise ValueError(f"duration {text!r}: want e.g. 24h, 90m, 2d or hours as a number") from None


def plan_from_config(cfg, now: float, duration_h: float) -> Plan | None:
    """The Plan a MeterConfig asks for (None when `schedule_mode` is null): call once when a run starts."""
    if cfg.schedule_mode is None:
        return None
    trace = TraceIntensity.from_csv(cfg.intensity_trace, kind=cfg.intensity_kind, align=cfg.trace_align)
    return plan(trace, now, duration_h, cfg.schedule_mode, cfg.schedule_window_h, cfg.schedule_span_factor)


def wait_until_allowed(p: Plan, now_fn=None, sleep_fn=None, max_wait_s: float | None = None) -> bool:
    """Block until the plan allows work (between steps, after a checkpoint). Returns False when the plan is
    exhausted or the wait would exceed `max_wait_s` (the caller can then exit and be resumed later)."""
    import time

    now_fn, sleep_fn = now_fn or time.time, sleep_fn or time.sleep
    now = now_fn()
    nxt = p.next_allowed_time(now)
    if nxt is None or (max_wait_s is not None and nxt - now > max_wait_s):
        return False
    while now < nxt:
        sleep_fn(min(60.0, nxt - now))
        now = now_fn()
    return True
