"""The labelled estimate, used only for components no measured source covers (here: this CPU-only VM).

CPU (`estimated:cpu_time_linear`): E = cpu_s x (W_max - W_idle) + wall_s x n_cores x W_idle, where cpu_s is
this process's own CPU time (user + system, all threads, plus reaped children) and W_idle/W_max are per-core
power at 0 % and 100 % load (defaults: Cloud Carbon Footprint's per-vCPU coefficients, AWS average, from
SPECpower; power is close to linear in utilisation in SPECpower data). n_cores is the cores this job holds
(its CPU affinity unless `cpu_cores` says otherwise; 0 charges dynamic power only).
RAM (`estimated:ram_rss`): E = integral of RSS(t) [GB] x `ram_w_per_gb` dt, RSS sampled by the sampler.

Why not CodeCarbon's model: it takes *machine-wide* load (other tenants' work is billed to this job; on this
shared 2-core VM that is most of it), models power as TDP x (0.1 + 0.9 load^3), which under-counts mid loads
against linear SPECpower curves, adds a flat 20 W for RAM whatever the job uses (71 % of its "energy" here), and
computes load with a blocking call. Here the CPU term is exact at any instant (two syscalls, no sampler
needed), the RAM term follows what the process actually holds, and every figure is labelled `estimated:`.
"""

from __future__ import annotations

import os
import resource
import threading
import time

from meter.sources.base import SOURCES, EnergySource, SourceUnavailable

CPU_KEY = "cpu/estimated:cpu_time_linear"
RAM_KEY = "dram/estimated:ram_rss"
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def process_cpu_seconds() -> float:
    """CPU seconds of this process (all threads) plus its reaped children; ns resolution, never blocks."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def rss_bytes() -> int:
    """Resident set size now (from /proc/self/statm; peak RSS where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def allocated_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class EstimateSource(EnergySource):
    name = "estimate"

    def __init__(self, want: set[str], w_idle: float, w_max: float, cores: int, ram_w_per_gb: float,
                 sample_period_s: float, cpu_seconds=process_cpu_seconds, rss=rss_bytes,
                 clock=time.monotonic) -> None:
        self._cpu, self._ram = "cpu" in want, "dram" in want
        self.w_idle, self.w_max, self.cores, self.ram_w_per_gb = w_idle, w_max, cores, ram_w_per_gb
        self._cpu_seconds, self._rss, self._clock = cpu_seconds, rss, clock
        self.update_period_s = sample_period_s if self._ram else 0.0
        self._lock = threading.Lock()
        self._t0 = clock()
        self._cpu0 = cpu_seconds()
        self._ram_j, self._ram_t, self._ram_w = 0.0, self._t0, self._ram_power()

    def keys(self) -> list[str]:
        return [k for k, on in ((CPU_KEY, self._cpu), (RAM_KEY, self._ram)) if on]

    def _ram_power(self) -> float:
        return self._rss() / 1e9 * self.ram_w_per_gb

    def poll(self) -> None:
        if not self._ram:
            return
        now, w = self._clock(), self._ram_power()
        with self._lock:  # trapezoid between samples
            self._ram_j += 0.5 * (w + self._ram_w) * (now - self._ram_t)
            self._ram_t, self._ram_w = now, w

    def read(self) -> dict[str, float]:
        now = self._clock()
        out = {}
        if self._cpu:
            busy = self._cpu_seconds() - self._cpu0
            out[CPU_KEY] = busy * (self.w_max - self.w_idle) + (now - self._t0) * self.cores * self.w_idle
        if self._ram:
            with self._lock:
                out[RAM_KEY] = self._ram_j + self._ram_w * max(0.0, now - self._ram_t)
        return out


@SOURCES.register("estimate")
def _factory(cfg, want: set[str]) -> EstimateSource:
    want = want & {"cpu", "dram"}
    if not want:
        raise SourceUnavailable("CPU and DRAM already measured")
    cores = allocated_cores() if cfg.cpu_cores is None else cfg.cpu_cores
    return EstimateSource(want, cfg.cpu_w_per_core_idle, cfg.cpu_w_per_core_max, cores, cfg.ram_w_per_gb,
                          cfg.sample_period_s)
