"""Reading a carbon-intensity trace file (`meter.intensity_trace=`): every problem is one `TraceError` line that
names the file, the line and what is allowed, raised when `MeterConfig` is validated, before any work.

Format: CSV, header `timestamp,gco2_per_kwh` (further columns are ignored), one row per time step; ISO 8601
timestamps (naive ones are read as UTC) on a regular grid; values in g/kWh, 0..2000. An empty value is a
missing step, filled by linear interpolation and reported; missing steps may span at most 24 h. Rows out of
time order are sorted, with a warning.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
HEADER = ["timestamp", "gco2_per_kwh"]
MAX_G_PER_KWH = 2000.0  # above any grid's average (coal ~1000 g/kWh): larger values are a unit mistake
MAX_GAP_S = 24 * 3600.0
ALLOWED = ("CSV with header 'timestamp,gco2_per_kwh', one row per time step (ISO 8601 timestamps, increasing, on "
           f"a regular grid, gaps <= {MAX_GAP_S / 3600:g} h), values in g/kWh from 0 to {MAX_G_PER_KWH:g} "
           "(empty = missing, interpolated)")


class TraceError(ValueError):
    """A carbon-intensity trace that cannot be used. `path` and `line` (1-based, or None) say where."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None, allowed: str = ALLOWED) -> None:
        self.path, self.line, self.problem = str(path), line, problem
        where = self.path + (f":{line}" if line is not None else "")
        super().__init__(f"meter.intensity_trace={where}: {problem}; allowed: {allowed}")


def parse_time(s: str) -> float:
    """Unix seconds of an ISO 8601 timestamp; naive timestamps are UTC. ValueError if unparseable."""
    dt = datetime.fromisoformat(s.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _value(path: Path, lineno: int, text: str) -> float:
    if not text:
        return math.nan  # a missing step
    try:
        v = float(text)
    except ValueError:
        raise TraceError(path, f"value {text!r} is not a number", lineno) from None
    if not (math.isfinite(v) and 0 <= v <= MAX_G_PER_KWH):
        raise TraceError(path, f"value {text!r} is out of range", lineno)
    return v


def check_times(t: np.ndarray, lines: np.ndarray, fail) -> float:
    """The grid step of sorted times `t` (s): their commonest spacing; `fail(problem, line)` builds the error for a repeated timestamp or
    one off the grid. `lines[i]` is where t[i] came from."""
    if len(t) < 2:
        return 3600.0
    dt = np.diff(t)
    dup = np.flatnonzero(dt == 0)
    if len(dup):
        i = int(dup[0])
        raise fail(f"timestamp repeats the one on line {lines[i]}", lines[i + 1])
    steps, counts = np.unique(np.round(dt, 3), return_counts=True)
    step = float(steps[np.argmax(counts)])  # the commonest spacing (the smallest on a tie), robust to gaps
    off = np.abs((t - t[0]) / step - np.rint((t - t[0]) / step)) > 0.01
    if off.any():
        raise fail(f"timestamp is not on the trace's regular {step:g} s grid", lines[int(np.flatnonzero(off)[0])])
    return step


def check_gaps(t: np.ndarray, known: np.ndarray, lines: np.ndarray, step: float, fail) -> None:
    """Refuse more than MAX_GAP_S between consecutive known values (absent rows and empty values alike)."""
    k = np.flatnonzero(known)
    dt = np.diff(t[k])
    gap = np.flatnonzero(dt > max(MAX_GAP_S, step))
    if len(gap):
        i = int(gap[0])
        raise fail(f"{dt[i] / 3600:g} h without a value after line {lines[k[i]]}", lines[k[i + 1]])


def _read_rows(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError:
        raise TraceError(path, "not a UTF-8 text file") from None
    except OSError as e:
        raise TraceError(path, f"cannot be read ({e.strerror})") from None
    if not rows:
        raise TraceError(path, "the file is empty")
    header = [h.strip().lower() for h in rows[0]]
    if header[:2] != HEADER:
        raise TraceError(path, f"header is {','.join(rows[0])!r}", 1)
    times, values, lines = [], [], []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        try:
            times.append(parse_time(row[0]))
        except ValueError:
            raise TraceError(path, f"timestamp {row[0]!r} is not ISO 8601 (e.g. 2022-01-01T00:00:00Z)",
                             lineno) from None
        values.append(_value(path, lineno, row[1].strip() if len(row) > 1 else ""))
        lines.append(lineno)
    if not times:
        raise TraceError(path, "no data rows after the header")
    return np.array(times), np.array(values, dtype=float), np.array(lines)


@lru_cache(maxsize=16)
def _read_cached(path: str, _resolved: str, _mtime_ns: int, _size: int) -> tuple[np.ndarray, np.ndarray]:
    p = Path(path)  # as the user wrote it, for messages; the cache key also holds the resolved path and version
    t, v, lines = _read_rows(p)
    order = np.argsort(t, kind="stable")
    if np.any(np.diff(order) != 1):
        first = int(lines[np.flatnonzero(np.diff(t) < 0)[0] + 1])
        log.warning("intensity trace %s: rows are not in time order (first at line %d); sorted", p, first)
        t, v, lines = t[order], v[order], lines[order]
    def fail(problem: str, line) -> TraceError:
        return TraceError(p, problem, int(line))

    step = check_times(t, lines, fail)
    if np.isnan(v).all():
        raise TraceError(p, "every value is empty")
    check_gaps(t, ~np.isnan(v), lines, step, fail)
    t.setflags(write=False)
    v.setflags(write=False)
    return t, v


def read_trace(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(times in unix s, values in g/kWh with NaN for missing steps), sorted and checked; cached per file
    version, so validating a config and metering a run read the file once."""
    if path is None or not str(path).strip():
        raise TraceError(repr(path), "no file given", allowed="a path to a " + ALLOWED + ", or null for none")
    p = Path(path)
    if not p.is_file():
        raise TraceError(p, "no such file" if not p.exists() else "not a file")
    st = os.stat(p)
    return _read_cached(str(p), str(p.resolve()), st.st_mtime_ns, st.st_size)
