"""`Measurement`: the energy, time and carbon of one unit of work; sums exactly, round-trips through JSON.

`components` maps "<component>/<method>" (e.g. "cpu/estimated:cpu_time_linear", "gpu/measured:nvml_counter")
to joules, so a sum of measurements keeps every component labelled and `method` lists all of them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

from meter.equivalents import equivalents

J_PER_KWH = 3.6e6


def _merge_labels(a: str, b: str, sep: str) -> str:
    parts: list[str] = []
    for s in (a, b):
        for p in s.split(sep) if s else []:
            if p not in parts:
                parts.append(p)
    return sep.join(parts)


@dataclass
class Measurement:
    joules: float = 0.0
    seconds: float = 0.0
    method: str = ""  # "+"-joined component methods, "disabled", or "" before a window has closed
    start_unix: Optional[float] = None
    end_unix: Optional[float] = None
    g_co2e: float = 0.0
    intensity_g_per_kwh: float = 0.0  # energy-weighted mean over the measured span
    intensity_source: str = ""
    intensity_kind: str = "average"
    pue: float = 1.0
    components: dict[str, float] = field(default_factory=dict)
    short_window: bool = False  # shorter than short_window_factor x a live counter's update period
    name: str = ""
    flops: Optional[int] = None  # counted in the window (`Meter.window(..., flops=True)`); None = not counted
    overlapping_jobs: int = 0  # other metered jobs live on this host during it (meter.peers): shared power overlaps

    @property
    def kwh(self) -> float:
        return self.joules / J_PER_KWH

    @property
    def estimated_components(self) -> list[str]:
        return [k for k in self.components if "/estimated:" in k]

    def row(self) -> dict:
        """Flat, '/'-namespaced, JSON-serialisable row (the keys DESIGN.md fixes, plus a few more)."""
        est = self.estimated_components
        return {
            "energy/joules": self.joules,
            "energy/kwh": self.kwh,
            "energy/method": self.method,
            "carbon/g_co2e": self.g_co2e,
            "carbon/intensity_g_per_kwh": self.intensity_g_per_kwh,
            "carbon/intensity_source": self.intensity_source,
            "carbon/pue": self.pue,
            "time/wall_s": self.seconds,
            "energy/estimated_joules": sum((self.components[k] for k in est), 0.0),
            "energy/measured_joules": sum((v for k, v in self.components.items() if "/measured:" in k), 0.0),
            "energy/estimated_components": ",".join(est),
            "energy/short_window": self.short_window,
            "energy/overlapping_jobs": self.overlapping_jobs,
            "carbon/intensity_kind": self.intensity_kind,
            **equivalents(self.g_co2e),
        }

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Measurement:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"Measurement.from_dict: unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
        d = dict(d)
        d["components"] = {str(k): float(v) for k, v in d.get("components", {}).items()}
        return cls(**d)

    def __add__(self, other: Measurement) -> Measurement:
        if not isinstance(other, Measurement):
            return NotImplemented
        joules = self.joules + other.joules
        comps = dict(self.components)
        for k, v in other.components.items():
            comps[k] = comps.get(k, 0.0) + v

        def weighted(a: float, b: float) -> float:  # energy-weighted; plain first value when nothing was measured
            if joules > 0:
                return (a * self.joules + b * other.joules) / joules
            return a if self.seconds >= other.seconds else b

        starts = [t for t in (self.start_unix, other.start_unix) if t is not None]
        ends = [t for t in (self.end_unix, other.end_unix) if t is not None]
        return Measurement(
            joules=joules,
            seconds=self.seconds + other.seconds,
            method=_merge_labels(self.method, other.method, "+"),
            start_unix=min(starts) if starts else None,
            end_unix=max(ends) if ends else None,
            g_co2e=self.g_co2e + other.g_co2e,
            intensity_g_per_kwh=weighted(self.intensity_g_per_kwh, other.intensity_g_per_kwh),
            intensity_source=_merge_labels(self.intensity_source, other.intensity_source, " | "),
            intensity_kind=_merge_labels(self.intensity_kind, other.intensity_kind, "+"),
            pue=weighted(self.pue, other.pue),
            components=comps,
            short_window=self.short_window or other.short_window,
            overlapping_jobs=max(self.overlapping_jobs, other.overlapping_jobs),
            name=self.name if self.name == other.name else _merge_labels(self.name, other.name, "+"),
            flops=None if self.flops is None and other.flops is None else (self.flops or 0) + (other.flops or 0),
        )

    def __radd__(self, other) -> Measurement:  # sum([...]) starts from 0
        if other == 0:
            return self
        return NotImplemented

    def __post_init__(self) -> None:
        for key in ("joules", "seconds", "g_co2e"):
            v = getattr(self, key)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"Measurement.{key}={v!r}: must be a finite number >= 0")
