"""`Meter`: named, nestable windows of energy, time and carbon, with a background sampler writing `energy.csv`.

    meter = Meter(MeterConfig(), out_dir=job_dir)     # or Meter(region="FRA"): MeterConfig fields as keywords
    with meter:                              # opens sources, starts the sampler thread; exit flushes and closes
        with meter.window("train") as w:     # also a decorator: @meter.window("eval")
            ...
        w.row()                              # energy/..., carbon/..., time/wall_s
    meter.result()                           # MeterResult: totals, per-window sums, FLOPs of window(.., flops=True)
    @metered(region="FRA")                   # the same around each call of a function: f.result after it

Sources are taken per component in `cfg.sources` order: a component ("gpu", "cpu", "dram") measured by a
better source is never also estimated. Every edge and every sampler tick advance one ledger under a lock:
cumulative joules per component and cumulative grams, where each increment of energy is charged the
intensity averaged over the time it was spent, times PUE. A window is the difference of two ledger
snapshots, so windows, `totals()` and `energy.csv` always agree.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Optional

from meter.config import MeterConfig
from meter.intensity import Intensity, resolve
from meter.measurement import Measurement
from meter.peers import Lease
from meter.result import MeterResult
from meter.sources import SOURCES, EnergySource, SourceUnavailable

log = logging.getLogger(__name__)
COMPONENTS = ("gpu", "cpu", "dram")
CSV_COLUMNS = ["t_unix", "window", "joules_cumulative", "watts", "source"]


class _Snapshot:
    __slots__ = ("unix", "mono", "comps", "grams")

    def __init__(self, unix: float, mono: float, comps: dict[str, float], grams: float) -> None:
        self.unix, self.mono, self.comps, self.grams = unix, mono, comps, grams


def _last_cumulative(path: Path) -> float:
    """joules_cumulative of the last row of an existing energy.csv (0 if none), so a resumed run continues it."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().decode(errors="replace").strip().splitlines()
        return float(lines[-1].split(",")[2]) if len(lines) > 1 or not lines[-1].startswith("t_unix") else 0.0
    except (OSError, IndexError, ValueError):
        return 0.0


class _WindowContext:
    """Context manager (and decorator) for one named window; each `with` fills a fresh Measurement."""

    def __init__(self, meter: Meter, name: str, flops: bool = False, disjoint: bool = False) -> None:
        self._meter, self._name, self._flops, self._disjoint = meter, name, flops, disjoint
        self._stack: list[tuple[Measurement, _Snapshot, object]] = []

    def __enter__(self) -> Measurement:
        m = Measurement(name=self._name)
        if self._disjoint and self._meter._flop_depth:
            raise ValueError(f"window {self._name!r}(disjoint=True) inside a FLOP-counted window: its FLOPs cannot be "
                             "carved out of the outer count; count FLOPs in a window that holds no disjoint one")
        counter = None
        if self._flops:  # torch is imported only here: metering alone never needs it
            from meter.flops import flop_counter  # the counter count_flops uses: one convention

            counter = flop_counter()
            counter.__enter__()
            self._meter._flop_depth += 1
        self._stack.append((m, self._meter._open_window(self._name), counter))
        return m

    def __exit__(self, *exc) -> None:
        m, start, counter = self._stack.pop()
        if counter is not None:
            counter.__exit__(*exc)
            m.flops = int(counter.get_total_flops())
            self._meter._flop_depth -= 1
            if self._meter._flop_depth == 0:  # an inner counted window is already inside the outer one's count
                self._meter._flops_total = (self._meter._flops_total or 0) + m.flops
        self._meter._close_window(m, start, self._disjoint)

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with _WindowContext(self._meter, self._name, self._flops, self._disjoint):
                return fn(*args, **kwargs)

        return wrapped


class Meter:
    """Energy, carbon and time of named windows; `Meter(region="FRA")` takes MeterConfig fields as keywords.

    `with Meter() as m:` ... `m.result()` (a MeterResult) after or during the block."""

    def __init__(self, cfg: Optional[MeterConfig] = None, out_dir: Optional[Path | str] = None, **config) -> None:
        if config:
            cfg = dataclasses.replace(cfg, **config) if cfg is not None else MeterConfig(**config)
        self.cfg = cfg if cfg is not None else MeterConfig()
        self._window_totals: dict[str, Measurement] = {}
        self._flop_depth, self._flops_total = 0, None
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self._sources: Optional[list[EnergySource]] = None
        self._report: list[tuple[str, str, str]] = []  # (source, "live"/"unavailable"/"skipped", detail)
        self._intensity: Optional[Intensity] = None
        self._lock = threading.Lock()
        self._windows: list[str] = []
        self._carved: list[Optional[Measurement]] = []  # per open window: disjoint windows closed inside it
        self._lease: Optional[Lease] = None
        self._peers: list[int] = []  # per open window: most other metered jobs seen on this host during it
        self._running = False
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._rows: list[list] = []
        self._csv = None
        self._csv_offset = 0.0
        self._first: Optional[_Snapshot] = None
        self._last: Optional[_Snapshot] = None
        self._update_period = 0.0
        self._tick_errors: set[str] = set()

    # ---------------------------------------------------------------- sources
    def _open_sources(self) -> list[EnergySource]:
        if self._sources is not None:
            return self._sources
        sources, want = [], set(COMPONENTS)
        first_time = not self._report
        self._report = []
        for name in self.cfg.sources:
            if not want:
                self._report.append((name, "skipped", "every component already covered"))
                continue
            try:
                src = SOURCES.get(name)(self.cfg, set(want))
            except SourceUnavailable as e:
                self._report.append((name, "unavailable", str(e)))
                continue
            sources.append(src)
            want -= src.covers()
            detail = ", ".join(src.keys())
            notes = getattr(src, "notes", None)
            self._report.append((name, "live", detail + (f" [{'; '.join(notes)}]" if notes else "")))
        for comp in sorted(want - {"gpu"}):
            self._report.append((comp, "unmetered", "no listed source covers it"))
        self._sources = sources
        self._update_period = max((s.update_period_s for s in sources), default=0.0)
        for name, state, detail in self._report if first_time else []:  # said once per Meter, not per window
            (log.info if state in ("live", "skipped") else log.warning)("meter source %s: %s (%s)", name, state, detail)
        return sources

    def sources_report(self) -> list[tuple[str, str, str]]:
        """[(source, state, detail)]: which sources are live and why the others are not; computed once."""
        if self.cfg.enabled:
            self._open_sources()
        else:
            return [("all", "disabled", "MeterConfig.enabled=False: wall time only")]
        return list(self._report)

    def gpu_names(self) -> list[str]:
        """Names of the GPUs this Meter measures (one per metered device; empty without NVML)."""
        return [n for s in self._sources or [] for n in getattr(s, "device_names", [])]

    @property
    def intensity(self) -> Intensity:
        if self._intensity is None:
            self._intensity = resolve(self.cfg)
        return self._intensity

    # ---------------------------------------------------------------- ledger
    def _read_all(self) -> dict[str, float]:
        comps: dict[str, float] = {}
        for s in self._sources or []:
            comps.update(s.read())
        return comps

    def _advance(self) -> _Snapshot:
        """Read every source now and extend the ledger (caller holds the lock)."""
        comps = self._read_all()
        unix, mono = time.time(), time.perf_counter()
        last = self._last
        grams = 0.0
        if last is not None:
            de = sum(comps.values()) - sum(last.comps.values())
            grams = last.grams + self.intensity.grams(max(de, 0.0), last.unix, unix, self.cfg.pue)
        snap = _Snapshot(unix, mono, comps, grams)
        self._last = snap
        if self._first is None:
            self._first = snap
        return snap

    def _snapshot(self) -> _Snapshot:
        if not self.cfg.enabled:
            return _Snapshot(time.time(), time.perf_counter(), {}, 0.0)
        if not self._running:
            raise RuntimeError("Meter window or totals used outside `with meter:` (call meter.start() first)")
        if self.cfg.cuda_sync and "torch" in sys.modules and any(s.name == "nvml" for s in self._sources or []):
            import torch

            if torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.synchronize()  # GPU work queued in this window belongs to it
        with self._lock:
            return self._advance()

    def _fill(self, m: Measurement, a: _Snapshot, b: _Snapshot) -> Measurement:
        m.start_unix, m.end_unix = a.unix, b.unix
        m.seconds = max(0.0, b.mono - a.mono)
        m.pue = self.cfg.pue
        if not self.cfg.enabled:
            m.method, m.intensity_source, m.intensity_kind = "disabled", "disabled", "average"
            return m
        m.components = {k: max(0.0, b.comps.get(k, 0.0) - a.comps.get(k, 0.0)) for k in b.comps}
        m.joules = sum(m.components.values())
        m.method = "+".join(k.split("/", 1)[1] for k in m.components) if m.components else "none"
        m.method = "+".join(dict.fromkeys(m.method.split("+")))
        m.g_co2e = max(0.0, b.grams - a.grams)
        m.intensity_g_per_kwh = (m.g_co2e / (m.kwh * m.pue) if m.joules > 0
                                 else self.intensity.mean(a.unix, b.unix))
        m.intensity_source, m.intensity_kind = self.intensity.source, self.intensity.kind
        m.short_window = m.seconds < self.cfg.short_window_factor * self._update_period
        return m

    # ---------------------------------------------------------------- windows
    def window(self, name: str, flops: bool = False, disjoint: bool = False) -> _WindowContext:
        """A named window (context manager or decorator) yielding its Measurement when it closes. `flops=True`
        also counts every FLOP run inside it with `meter.flops.flop_counter` (2 per multiply-add, backward
        included); that is slow, so count a few representative steps, not a whole training run. `disjoint=True`
        carves this window's energy, carbon and time out of every window enclosing it (e.g. an `eval` inside a
        `train` window), so the windows' sums partition the run instead of counting the inner one twice."""
        if not name or "/" in name:
            raise ValueError(f"window name {name!r}: must be non-empty and contain no '/' (nesting adds it)")
        return _WindowContext(self, name, flops, disjoint)

    def _open_window(self, name: str) -> _Snapshot:
        snap = self._snapshot()
        self._windows.append(name)
        self._carved.append(None)
        n = self._lease.others() if self._lease is not None else 0
        with self._lock:
            self._peers.append(n)
        return snap

    def _close_window(self, m: Measurement, start: _Snapshot, disjoint: bool = False) -> None:
        end = self._snapshot()
        if self._windows and self._windows[-1] == m.name:
            self._windows.pop()
        elif m.name in self._windows:
            self._windows.remove(m.name)
        carved = self._carved.pop() if self._carved else None
        with self._lock:
            peers = self._peers.pop() if self._peers else 0
        self._fill(m, start, end)
        m.overlapping_jobs = max(peers, self._lease.others() if self._lease is not None else 0)
        if carved is not None:
            _carve(m, carved)
        if disjoint:  # every enclosing window still open loses this one's share when it closes
            self._carved = [m if c is None else c + m for c in self._carved]
        prev = self._window_totals.get(m.name)
        self._window_totals[m.name] = m if prev is None else prev + m
        if m.short_window:
            log.debug("window %s (%.3f s) is shorter than %g x the %g s update period: energy is coarse",
                      m.name, m.seconds, self.cfg.short_window_factor, self._update_period)

    def totals(self) -> Measurement:
        """Everything this Meter measured from start() to now (or to stop())."""
        if not self.cfg.enabled:
            a = self._first or _Snapshot(time.time(), time.perf_counter(), {}, 0.0)
            return self._fill(Measurement(name="total"), a, self._last or self._snapshot())
        if self._first is None:
            return Measurement(name="total", method="none")
        end = self._snapshot() if self._running else self._last
        return self._fill(Measurement(name="total"), self._first, end)

    def result(self) -> MeterResult:
        """Totals so far (or to stop()), each window name's sum, and the FLOPs of counted windows. Windows nested
        in a counted window are part of its count; only outermost counted windows are summed."""
        return MeterResult(self.totals(), dict(self._window_totals), self._flops_total)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> Meter:
        if self._running:
            return self
        if not self.cfg.enabled:
            self._first = _Snapshot(time.time(), time.perf_counter(), {}, 0.0)
            return self
        self._open_sources()
        _ = self.intensity.source  # resolve (and fail on a bad trace) before any work
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            path = self.out_dir / "energy.csv"
            fresh = not path.exists() or path.stat().st_size == 0
            self._csv_offset = 0.0 if fresh else _last_cumulative(path)
            self._csv = path.open("a", newline="")
            if fresh:
                csv.writer(self._csv).writerow(CSV_COLUMNS)
        with self._lock:
            self._first = self._last = None
            self._advance()
        self._lease = Lease()
        self._running = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="meter-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if not self.cfg.enabled:
            self._last = _Snapshot(time.time(), time.perf_counter(), {}, 0.0)
            return
        if not self._running:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._tick()  # a last row at the stop time
        self._running = False
        self._flush()
        if self._csv is not None:
            self._csv.close()
            self._csv = None
        if self.cfg.emissions_csv and self.out_dir is not None:
            from meter.exports import append_emissions_csv, codecarbon_row

            row = codecarbon_row(self.totals(), run_id=self.out_dir.name, region=self.cfg.region,
                                 gpu_names=self.gpu_names())
            append_emissions_csv(self.out_dir / "emissions.csv", row)
        for s in self._sources or []:
            s.close()
        self._sources = None
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def __enter__(self) -> Meter:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---------------------------------------------------------------- sampler
    def _tick(self) -> None:
        for s in self._sources or []:
            s.poll()
        if self._lease is not None and self._peers:  # a job that started and ended inside a window still overlaps
            n = self._lease.others()
            with self._lock:
                self._peers = [max(p, n) for p in self._peers]
        with self._lock:
            prev = self._last
            snap = self._advance()
        total = sum(snap.comps.values())
        dt = snap.mono - prev.mono if prev is not None else 0.0
        watts = (total - sum(prev.comps.values())) / dt if prev is not None and dt > 0 else 0.0
        if self._csv is not None:
            self._rows.append([f"{snap.unix:.3f}", "/".join(self._windows), f"{self._csv_offset + total:.6f}",
                               f"{watts:.4f}", "+".join(snap.comps)])

    def _flush(self) -> None:
        if self._csv is not None and self._rows:
            rows, self._rows = self._rows, []
            csv.writer(self._csv).writerows(rows)
            self._csv.flush()

    def _run(self) -> None:
        next_flush = time.monotonic() + self.cfg.flush_period_s
        while not self._stop.wait(self.cfg.sample_period_s):
            try:
                self._tick()
                if time.monotonic() >= next_flush:
                    self._flush()
                    next_flush = time.monotonic() + self.cfg.flush_period_s
            except Exception as e:  # noqa: BLE001  a failing read must not kill training; say so once per kind
                kind = type(e).__name__
                if kind not in self._tick_errors:
                    self._tick_errors.add(kind)
                    log.exception("meter sampler tick failed (%s); further %s errors are not logged", kind, kind)


def _carve(m: Measurement, inner: Measurement) -> None:
    """Remove `inner` (a disjoint window closed inside `m`) from `m` in place; both are ledger differences, so this
    is exact up to rounding (clamped at 0)."""
    m.seconds = max(0.0, m.seconds - inner.seconds)
    m.g_co2e = max(0.0, m.g_co2e - inner.g_co2e)
    m.components = {k: max(0.0, v - inner.components.get(k, 0.0)) for k, v in m.components.items()}
    m.joules = sum(m.components.values())
    if m.joules > 0:
        m.intensity_g_per_kwh = m.g_co2e / (m.kwh * m.pue)


def metered(fn=None, *, name: str = "call", out_dir: Optional[Path | str] = None, flops: bool = False, **config):
    """Decorator, bare (`@metered`) or with MeterConfig keywords (`@metered(region="FRA", flops=True)`): each call
    runs inside a fresh Meter and one window `name`; it returns what the function returns, and
    `<function>.result` holds the last call's MeterResult."""
    cfg = MeterConfig(**config)  # a bad option fails where the function is decorated, not at its first call

    def deco(f):
        @functools.wraps(f)
        def wrapped(*args, **kwargs):
            meter = Meter(cfg, out_dir=out_dir)
            try:
                with meter, meter.window(name, flops=flops):
                    return f(*args, **kwargs)
            finally:
                wrapped.result = meter.result()

        wrapped.result = None
        return wrapped

    return deco(fn) if fn is not None else deco
