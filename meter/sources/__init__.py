"""Energy sources, by registry name, in the order `MeterConfig.sources` lists them.

Each factory is `factory(cfg: MeterConfig, want: set[str]) -> EnergySource` and raises `SourceUnavailable`
with a reason; `want` is the set of components ("cpu", "dram", "gpu") not yet covered by a better source.
"""

from __future__ import annotations

from meter.registry import Registry
from meter.sources.base import EnergySource, SourceUnavailable

SOURCES: Registry = Registry("meter energy source")

from meter.sources import estimate, nvml, rapl  # noqa: E402,F401  (register themselves)

__all__ = ["SOURCES", "EnergySource", "SourceUnavailable"]
