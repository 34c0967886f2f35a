"""`MeterConfig`: every knob of the meter, primitive fields only (Hydra ConfigStore-able), validated on creation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from meter.trace_file import TraceError, read_trace

__all__ = ["MeterConfig", "TraceError"]

INTENSITY_KINDS = ("average", "marginal")
TRACE_ALIGNS = ("shift_year", "strict")


def _f(default, help: str):
    """A field with its one-line meaning and unit in `metadata["help"]` (the runner's --help lists them)."""
    if callable(default):
        return field(default_factory=default, metadata={"help": help})
    return field(default=default, metadata={"help": help})


def _check(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise ValueError(f"meter.{key}={value!r} is invalid; allowed: {allowed}")


@dataclass
class MeterConfig:
    """Energy from the best live source per component (NVML > RAPL > labelled estimate); carbon = energy x
    intensity x PUE over the timestamped series.

    The estimate's defaults are Cloud Carbon Footprint's per-vCPU coefficients (AWS average over CPU
    micro-architectures, from SPECpower: 0.74 W idle, 3.5 W at 100 %) and 0.392 W per GB of memory; see
    `meter.sources.estimate` for the model and why it attributes only this process's CPU time.
    """

    enabled: bool = _f(True, "measure energy and carbon; false = wall time only (method 'disabled')")
    sources: list[str] = _f(lambda: ["nvml", "rapl", "estimate"],
                            "energy sources in priority order (nvml, rapl, estimate); a component is taken from the first")
    sample_period_s: float = _f(0.1, "background sampler period, s (power polling, RAM integration, energy.csv rows)")
    flush_period_s: float = _f(5.0, "energy.csv is flushed to disk at least this often, s")
    pue: float = _f(1.0, "data-centre power usage effectiveness multiplying the energy for carbon, 1.0 to 3.0")
    intensity_g_per_kwh: Optional[float] = _f(None, "grid carbon intensity, gCO2e/kWh (beats meter.region)")
    intensity_trace: Optional[str] = _f(None, "CSV timestamp,gco2_per_kwh: intensity over time (beats everything)")
    intensity_kind: str = _f("average", "what the trace or user value is: average or marginal")
    trace_align: str = _f("shift_year", "run outside the trace's dates: shift_year (map by time of year, flagged) or "
                                        "strict (error)")
    region: Optional[str] = _f(None, "country (ISO3 code or name) or cloud region (gcp:us-central1) in the bundled "
                                     "intensity table")
    cpu_w_per_core_idle: float = _f(0.74, "estimate: idle power per allocated core, W")
    cpu_w_per_core_max: float = _f(3.5, "estimate: power per core at 100 % use, W")
    cpu_cores: Optional[int] = _f(None, "estimate: cores whose idle power is charged to this job; null = the "
                                        "process's CPU affinity")
    ram_w_per_gb: float = _f(0.392, "estimate: memory power per GB of this process's resident memory, W/GB")
    rapl_root: str = _f("/sys/class/powercap", "folder holding the RAPL intel-rapl:* energy counters")
    cuda_sync: bool = _f(True, "torch.cuda.synchronize() before reading GPU counters at window edges")
    short_window_factor: float = _f(10.0, "windows shorter than this x the counter update period are flagged coarse")
    emissions_csv: bool = _f(False, "at the end, append a CodeCarbon-compatible row of totals to emissions.csv")
    schedule_mode: Optional[str] = _f(None, "carbon-aware scheduling (needs intensity_trace): null (run now), "
                                            "flexible_start or pause_resume")
    schedule_window_h: int = _f(24, "Flexible Start: latest delay of the start, h")
    schedule_span_factor: float = _f(2.0, "Pause and Resume: total span <= this x the duration")
    schedule_duration_h: float = _f(1.0, "the run's expected duration the schedule is planned for, h")

    def __post_init__(self) -> None:
        from meter.sources import SOURCES  # late: sources import config types

        self.sources = list(self.sources)
        for s in self.sources:
            _check(s in SOURCES, "sources", s, ", ".join(SOURCES.names()))
        _check(len(set(self.sources)) == len(self.sources), "sources", self.sources, "each name at most once")
        _check(0.001 <= self.sample_period_s <= 60, "sample_period_s", self.sample_period_s, "0.001 to 60 seconds")
        _check(0.1 <= self.flush_period_s <= 3600, "flush_period_s", self.flush_period_s, "0.1 to 3600 seconds")
        _check(1.0 <= self.pue <= 3.0, "pue", self.pue, "1.0 to 3.0")
        if self.intensity_g_per_kwh is not None:
            v = self.intensity_g_per_kwh
            _check(math.isfinite(v) and 0 <= v <= 2000, "intensity_g_per_kwh", v, "0 to 2000 g/kWh or null")
        _check(self.intensity_kind in INTENSITY_KINDS, "intensity_kind", self.intensity_kind, ", ".join(INTENSITY_KINDS))
        _check(self.trace_align in TRACE_ALIGNS, "trace_align", self.trace_align, ", ".join(TRACE_ALIGNS))
        _check(0 <= self.cpu_w_per_core_idle <= 50, "cpu_w_per_core_idle", self.cpu_w_per_core_idle, "0 to 50 W")
        _check(self.cpu_w_per_core_idle <= self.cpu_w_per_core_max <= 100, "cpu_w_per_core_max",
               self.cpu_w_per_core_max, "cpu_w_per_core_idle to 100 W")
        if self.cpu_cores is not None:
            _check(0 <= self.cpu_cores <= 4096, "cpu_cores", self.cpu_cores, "0 to 4096 or null")
        _check(0 <= self.ram_w_per_gb <= 5, "ram_w_per_gb", self.ram_w_per_gb, "0 to 5 W/GB")
        _check(1 <= self.short_window_factor <= 1000, "short_window_factor", self.short_window_factor, "1 to 1000")
        _check(self.schedule_mode in (None, "flexible_start", "pause_resume"), "schedule_mode", self.schedule_mode,
               "null, flexible_start, pause_resume")
        _check(0 <= self.schedule_window_h <= 24 * 14, "schedule_window_h", self.schedule_window_h, "0 to 336 hours")
        _check(0 < self.schedule_duration_h <= 24 * 14, "schedule_duration_h", self.schedule_duration_h,
               "(0, 336] hours")
        _check(1.0 <= self.schedule_span_factor <= 10.0, "schedule_span_factor", self.schedule_span_factor, "1 to 10")
        _check(self.schedule_mode is None or self.intensity_trace is not None, "schedule_mode", self.schedule_mode,
               "null unless meter.intensity_trace is set (scheduling needs a trace)")
        if self.region is not None:
            from meter.intensity import table_lookup

            table_lookup(self.region)  # ValueError naming meter.region and what is allowed
        if self.intensity_trace is not None:
            read_trace(self.intensity_trace)  # TraceError (a ValueError) naming the file, line and format
