"""Grid carbon intensity (gCO2e/kWh) over wall-clock time: a trace, a user value, a bundled table, or the world
average (flagged), in that order of preference (`resolve`).

A trace is CSV `timestamp,gco2_per_kwh`, each value holding from its timestamp to the next (hourly for the
bundled EIA-derived traces). Carbon of energy E spent over [t0, t1] is E x mean intensity over [t0, t1], so a
run that crosses hour boundaries is charged each hour's intensity for the time it spent there (Dodge et al.
2022 align GPU energy with grid intensity the same way). Missing hours are filled by linear interpolation and
reported. A run outside the trace's span is, by default, mapped onto the trace's year by time of year (UTC) and
the source says so; `trace_align="strict"` refuses instead.
"""

from __future__ import annotations

import csv
import logging
import math
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np

from meter.trace_file import TraceError, check_gaps, check_times, read_trace  # noqa: F401  (TraceError re-exported)

log = logging.getLogger(__name__)
J_PER_KWH = 3.6e6
TABLE_PATH = Path(__file__).parent / "data" / "intensity_table.csv"
# Ember, Global Electricity Review 2023: world power-sector intensity 436 gCO2/kWh in 2022.
WORLD_AVERAGE_G_PER_KWH = 436.0
WORLD_AVERAGE_SOURCE = "world_average (FLAGGED: no trace, value or region configured; Ember Global Electricity Review 2023, 2022 data)"


class Intensity(ABC):
    kind: str = "average"

    @property
    @abstractmethod
    def source(self) -> str: ...

    @abstractmethod
    def integral(self, t0: float, t1: float) -> float:
        """Integral of intensity over [t0, t1] (unix seconds), in g/kWh x s."""

    def mean(self, t0: float, t1: float) -> float:
        if t1 <= t0:
            return self.integral(t0, t0 + 1e-3) / 1e-3
        return self.integral(t0, t1) / (t1 - t0)

    def grams(self, joules: float, t0: float, t1: float, pue: float = 1.0) -> float:
        """gCO2e of `joules` spent at constant power over [t0, t1]."""
        return joules / J_PER_KWH * self.mean(t0, t1) * pue


class ConstantIntensity(Intensity):
    def __init__(self, value: float, source: str, kind: str = "average") -> None:
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"intensity {value!r}: must be a finite number >= 0 g/kWh")
        self.value, self._source, self.kind = float(value), source, kind

    @property
    def source(self) -> str:
        return self._source

    def integral(self, t0: float, t1: float) -> float:
        return self.value * (t1 - t0)


def _year_start(year: int) -> float:
    return datetime(year, 1, 1, tzinfo=timezone.utc).timestamp()


def _year_of(t: float) -> int:
    return datetime.fromtimestamp(t, tz=timezone.utc).year


class TraceIntensity(Intensity):
    """A regular-grid intensity trace. `values[i]` holds on [times[i], times[i] + step)."""

    def __init__(self, times: np.ndarray, values: np.ndarray, name: str, kind: str = "average",
                 align: str = "shift_year", filled: int = 0, gap_notes: list[str] | None = None) -> None:
        if len(times) < 1 or len(times) != len(values):
            raise ValueError(f"trace {name}: needs >= 1 (timestamp, value) pair")
        self.times = np.asarray(times, dtype=float)
        self.values = np.asarray(values, dtype=float)
        self.step = float(np.median(np.diff(self.times))) if len(times) > 1 else 3600.0
        self.name, self.kind, self.align = name, kind, align
        self.filled, self.gap_notes = filled, gap_notes or []
        self.t_start, self.t_end = float(self.times[0]), float(self.times[-1]) + self.step
        self.year = _year_of(self.t_start)
        self._cum = np.concatenate([[0.0], np.cumsum(self.values * self.step)])
        self.shifted = False

    @classmethod
    def from_csv(cls, path: str | Path, kind: str = "average", align: str = "shift_year") -> TraceIntensity:
        """Read a trace file (format and errors: `meter.trace_file`)."""
        t, v = read_trace(path)
        return cls.from_pairs(list(zip(t.tolist(), v.tolist())), name=Path(path).name, kind=kind, align=align)

    @classmethod
    def from_pairs(cls, pairs: list[tuple[float, float]], name: str = "trace", kind: str = "average",
                   align: str = "shift_year") -> TraceIntensity:
        """Regularise (timestamp, value) pairs onto their commonest step; fill missing or NaN values linearly."""
        if not pairs:
            raise ValueError(f"trace {name}: no (timestamp, value) pairs")
        pairs = sorted(pairs)
        t = np.array([p[0] for p in pairs])
        v = np.array([p[1] for p in pairs], dtype=float)
        def fail(problem: str, i) -> ValueError:
            return ValueError(f"trace {name}: pair {i}: {problem}")

        step = check_times(t, np.arange(len(t)), fail)
        if not np.isnan(v).all():
            check_gaps(t, ~np.isnan(v), np.arange(len(t)), step, fail)
        idx = np.rint((t - t[0]) / step).astype(int)
        grid = np.full(idx[-1] + 1, np.nan)
        grid[idx] = v
        missing = np.isnan(grid)
        known = np.flatnonzero(~missing)
        if len(known) == 0:
            raise ValueError(f"trace {name}: every value is missing")
        notes = []
        if missing.any():
            grid[missing] = np.interp(np.flatnonzero(missing), known, grid[known])
            # contiguous runs of filled points, for the report
            runs = np.split(np.flatnonzero(missing), np.flatnonzero(np.diff(np.flatnonzero(missing)) != 1) + 1)
            for r in runs:
                a = datetime.fromtimestamp(t[0] + r[0] * step, tz=timezone.utc).isoformat()
                notes.append(f"{a} (+{len(r)} x {step / 3600:g} h)")
            log.warning("intensity trace %s: %d missing values filled by linear interpolation: %s%s", name,
                        int(missing.sum()), "; ".join(notes[:5]), " ..." if len(notes) > 5 else "")
        times = t[0] + np.arange(len(grid)) * step
        return cls(times, grid, name, kind, align, int(missing.sum()), notes)

    @property
    def source(self) -> str:
        s = f"trace:{self.name}"
        if self.filled:
            s += f" ({self.filled} missing values filled)"
        if self.shifted:
            s += f" (run mapped onto {self.year} by time of year)"
        return s

    def _F(self, t: float) -> float:
        """Integral from t_start to t, with the first/last values extended beyond the trace."""
        if t <= self.t_start:
            return self.values[0] * (t - self.t_start)
        if t >= self.t_end:
            return self._cum[-1] + self.values[-1] * (t - self.t_end)
        i = int((t - self.t_start) // self.step)
        return self._cum[i] + self.values[i] * (t - self.times[i])

    def _pieces(self, t0: float, t1: float) -> list[tuple[float, float]]:
        if self.t_start <= t0 and t1 <= self.t_end:
            return [(t0, t1)]
        if self.align == "strict":
            raise ValueError(f"trace {self.name} covers {self.t_start:.0f}..{self.t_end:.0f} (unix s), not "
                             f"{t0:.0f}..{t1:.0f}; use meter.trace_align=shift_year or a trace of the run's dates")
        self.shifted = True
        out, a = [], t0
        while a < t1 or (a == t1 and not out):
            y = _year_of(a)
            b = min(t1, _year_start(y + 1))
            off = _year_start(self.year) - _year_start(y)
            out.append((a + off, b + off))
            if b == a:
                break
            a = b
        return out

    def integral(self, t0: float, t1: float) -> float:
        return sum(self._F(b) - self._F(a) for a, b in self._pieces(t0, t1))

    def hourly(self, start_unix: float, hours: int) -> np.ndarray:
        """Mean intensity of each of `hours` consecutive hours from `start_unix` (aligned like `integral`)."""
        edges = start_unix + 3600.0 * np.arange(hours + 1)
        return np.array([self.integral(a, b) / 3600.0 for a, b in zip(edges[:-1], edges[1:])])


@lru_cache(maxsize=1)
def load_table() -> dict[str, dict]:
    with TABLE_PATH.open(newline="") as f:
        rows = list(csv.DictReader(f))
    table = {}
    for r in rows:
        r["g_per_kwh"] = float(r["g_per_kwh"])
        table[r["key"].lower()] = r
        if r["kind"] == "country":
            table.setdefault(r["name"].lower(), r)
    return table


def table_lookup(region: str) -> tuple[float, str]:
    """(g/kWh, source) for a country (ISO3 code or name) or a cloud region ("gcp:us-central1", "aws:us-east-1")."""
    r = load_table().get(region.strip().lower())
    if r is None:
        raise ValueError(f"meter.region={region!r} is not in the bundled table {TABLE_PATH.name}; allowed: a "
                         "country ISO3 code or name (e.g. DEU, France) or a cloud region (gcp:<region>, aws:<region>)")
    return r["g_per_kwh"], f"table:{r['key']} ({r['source']}; data year {r['year']})"


def resolve(cfg) -> Intensity:
    """The intensity a MeterConfig asks for: trace > user value > region table > world average (flagged)."""
    if cfg.intensity_trace:
        return TraceIntensity.from_csv(cfg.intensity_trace, kind=cfg.intensity_kind, align=cfg.trace_align)
    if cfg.intensity_g_per_kwh is not None:
        return ConstantIntensity(cfg.intensity_g_per_kwh, "user", cfg.intensity_kind)
    if cfg.region:
        value, source = table_lookup(cfg.region)
        return ConstantIntensity(value, source, "average")
    return ConstantIntensity(WORLD_AVERAGE_G_PER_KWH, WORLD_AVERAGE_SOURCE, "average")
