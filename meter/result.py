"""`MeterResult`: what a `Meter` measured, as one object: energy (J, kWh, method), CO2e and where the intensity
came from, wall time, FLOPs counted in windows, and each named window's own measurement."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from meter.measurement import Measurement


@dataclass
class MeterResult:
    total: Measurement  # everything from start to stop (or to now)
    windows: dict[str, Measurement] = field(default_factory=dict)  # per window name, summed over its uses
    flops: Optional[int] = None  # counted in `window(..., flops=True)` windows (outermost only); None if none

    @property
    def joules(self) -> float:
        return self.total.joules

    @property
    def kwh(self) -> float:
        return self.total.kwh

    @property
    def method(self) -> str:
        """How the energy was obtained: "+"-joined `measured:<source>` / `estimated:<model>` labels."""
        return self.total.method

    @property
    def g_co2e(self) -> float:
        return self.total.g_co2e

    @property
    def intensity_source(self) -> str:
        return self.total.intensity_source

    @property
    def wall_s(self) -> float:
        return self.total.seconds

    def row(self) -> dict:
        """The total's flat record row (`Measurement.row`), with `flops/counted` when FLOPs were counted."""
        return {**self.total.row(), **({"flops/counted": self.flops} if self.flops is not None else {})}

    def __str__(self) -> str:
        t = self.total
        lines = [f"energy: {t.joules:.6g} J ({t.kwh:.4g} kWh), method {t.method or 'none'}",
                 f"carbon: {t.g_co2e:.4g} g CO2e at {t.intensity_g_per_kwh:.4g} g/kWh x PUE {t.pue:g}, "
                 f"intensity from {t.intensity_source or 'none'}",
                 f"time: {t.seconds:.4g} s wall"
                 + (f"; FLOPs: {self.flops:.4g} (2 per multiply-add, counted)" if self.flops is not None else "")]
        if self.windows:
            lines.append("windows: " + ", ".join(
                f"{n} {w.joules:.4g} J / {w.seconds:.3g} s" + (f" / {w.flops:.3g} FLOPs" if w.flops is not None else "")
                for n, w in self.windows.items()))
        return "\n".join(lines)
