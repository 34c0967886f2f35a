"""The energy-source interface. A source covers some components ("cpu", "dram", "gpu") and reports cumulative
joules per component since it was opened.

Counter sources (RAPL, NVML energy counter) read hardware in `read()`; polled sources (NVML power, the
estimate's RAM term) integrate in `poll()`, which only the sampler thread calls, and `read()` extrapolates
from the last poll, so a window edge never waits on a slow device call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from meter.registry import Registry

SOURCES: Registry = Registry("meter energy source")  # filled by the source modules as they are imported


class SourceUnavailable(RuntimeError):
    """Raised by a source factory with the reason it cannot measure here (missing path, permission, no GPU)."""


class EnergySource(ABC):
    name: str = ""
    update_period_s: float = 0.0  # how often the underlying counter changes (short-window flagging)

    @abstractmethod
    def keys(self) -> list[str]:
        """"<component>/<method>" labels this source reports, e.g. ["cpu/measured:rapl", "dram/measured:rapl"]."""

    @abstractmethod
    def read(self) -> dict[str, float]:
        """Cumulative joules per key of `keys()` since the source was opened; thread-safe, cheap."""

    def poll(self) -> None:
        """Called by the sampler every `sample_period_s` (integration, wrap tracking)."""
        self.read()

    def close(self) -> None:
        return None

    def covers(self) -> set[str]:
        return {k.split("/", 1)[0] for k in self.keys()}
