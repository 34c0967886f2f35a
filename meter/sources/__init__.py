"""Energy sources, by registry name, in the order `MeterConfig.sources` lists them.

Each factory is `factory(cfg: MeterConfig, want: set[str]) -> EnergySource` and raises `SourceUnavailable`
with a reason; `want` is the set of components ("cpu", "dram", "gpu") not yet covered by a better source.
"""

from __future__ import annotations

from meter.sources import estimate, nvml, rapl  # noqa: F401  (each registers itself in base.SOURCES)
from meter.sources.base import SOURCES, EnergySource, SourceUnavailable

__all__ = ["SOURCES", "EnergySource", "SourceUnavailable"]
