"""Training schedules as data: progressive shrinking (PS), no-PS and the sandwich rule, each a list of `Phase`.

A phase opens a subset of the spec's values per elastic dimension: `None` = closed (only the maximum), "all"
= every value of the spec, or an explicit tuple. `Phase.space(spec)` turns that into an `ArchSpace` and fails
with one message naming the phase, the key, the value and what is allowed.

PS (Cai et al. 2020, App. B): full net -> elastic kernel -> depth {3,4} -> {2,3,4} -> expand {4,6} -> {3,4,6},
resolution elastic throughout, 1/1/2/2/4/4 sub-nets per step, channels re-ordered before each expand phase.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from meter.registry import Registry

from .space import ArchSpace, SupernetSpec

DIMENSIONS = ("kernel_sizes", "expand_ratios", "depths", "resolutions")
Values = tuple | str | None


@dataclass(frozen=True)
class Phase:
    """One stage of a schedule: `epochs` at peak `lr` (cosine to 0), sampling `subnets_per_step` sub-nets from
    the values it opens, chosen by the `sampler` named in `training.SAMPLERS`."""

    name: str
    epochs: int
    lr: float
    kernel_sizes: Values = None
    expand_ratios: Values = None
    depths: Values = None
    resolutions: Values = "all"
    subnets_per_step: int = 1
    reorder_before: bool = False  # importance-sort channels before the phase starts (expand phases)
    sampler: str = "progressive"
    distill: bool = True  # KD from the teacher (ignored where no teacher exists, e.g. the full-net phase)
    # linear warm-up from ~0 to `lr` over the phase's first warmup_epochs (fractions allowed), then cosine over the
    # rest; counted within `epochs` (the reference's 125-epoch phases are 5 warm-up + 120 cosine)
    warmup_epochs: float = 0.0

    def __post_init__(self) -> None:
        where = f"phase {self.name!r}"
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ValueError(f"{where}: epochs={self.epochs!r}; allowed: an integer >= 0")
        if not self.lr > 0:
            raise ValueError(f"{where}: lr={self.lr!r}; allowed: > 0")
        if not (self.warmup_epochs >= 0 and (self.epochs == 0 or self.warmup_epochs <= self.epochs)):
            raise ValueError(f"{where}: warmup_epochs={self.warmup_epochs!r}; allowed: 0 <= warmup_epochs <= epochs "
                             f"({self.epochs})")
        if not isinstance(self.subnets_per_step, int) or self.subnets_per_step < 1:
            raise ValueError(f"{where}: subnets_per_step={self.subnets_per_step!r}; allowed: an integer >= 1")
        for dim in DIMENSIONS:
            v = getattr(self, dim)
            if isinstance(v, str) and v != "all":
                raise ValueError(f"{where}: {dim}={v!r}; allowed: 'all', null (closed) or a list of values")
            if isinstance(v, (list, tuple)):
                if not v:
                    raise ValueError(f"{where}: {dim}=[] is empty; allowed: 'all', null (closed) or values")
                object.__setattr__(self, dim, tuple(v))  # lists from YAML become hashable tuples

    @classmethod
    def from_dict(cls, d: dict) -> Phase:
        """Build from a plain mapping (a config); an unknown key names the phase and the allowed keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"phase {d.get('name', '?')!r}: unknown key(s) {unknown}; allowed: {sorted(known)}")
        return cls(**d)

    def values(self, spec: SupernetSpec, dim: str) -> tuple:
        """The values of `dim` this phase opens, checked against the spec."""
        full = tuple(getattr(spec, dim))
        v = getattr(self, dim)
        if v is None:
            return (max(full),)
        if v == "all":
            return full
        where = f"phase {self.name!r}: {dim}"
        if dim == "kernel_sizes" and max(v) > max(full):
            raise ValueError(f"{where}={list(v)}: kernel {max(v)} is larger than k_max={max(full)}; "
                             f"allowed: {list(full)}")
        bad = [x for x in v if x not in full]
        if bad:
            raise ValueError(f"{where}={list(v)}: {bad} not in the spec's set; allowed: {list(full)}")
        return tuple(x for x in full if x in v)  # ascending, as the spec orders them

    def space(self, spec: SupernetSpec) -> ArchSpace:
        """The ArchSpace this phase samples from; ValueError naming the phase and the bad key otherwise."""
        return ArchSpace(spec, **{dim: self.values(spec, dim) for dim in DIMENSIONS})


# The paper's PS schedule (ImageNet, 32 GPUs): epochs and peak lrs of App. B; scale with `scaled`.
# Warm-up as the reference code (train_ofa_net.py): 5 epochs in the full, kernel, depth-2 and expand-2 phases.
PS_SCHEDULE: tuple[Phase, ...] = (
    Phase("full", 180, 2.6, warmup_epochs=5),
    Phase("kernel", 125, 0.96, kernel_sizes="all", warmup_epochs=5),
    Phase("depth_1", 25, 0.08, kernel_sizes="all", depths=(3, 4), subnets_per_step=2),
    Phase("depth_2", 125, 0.24, kernel_sizes="all", depths="all", subnets_per_step=2, warmup_epochs=5),
    Phase("expand_1", 25, 0.08, kernel_sizes="all", depths="all", expand_ratios=(4, 6), subnets_per_step=4,
          reorder_before=True),
    Phase("expand_2", 125, 0.24, kernel_sizes="all", depths="all", expand_ratios="all", subnets_per_step=4,
          reorder_before=True, warmup_epochs=5),
)


def scaled(phases, epoch_scale: float = 1.0, lr_scale: float = 1.0) -> list[Phase]:
    """Every phase's epochs x epoch_scale (rounded, at least 1 where it was > 0), its warm-up x epoch_scale (not
    rounded, at most the phase) and lr x lr_scale."""
    if not epoch_scale > 0 or not lr_scale > 0:
        raise ValueError(f"scaled: epoch_scale={epoch_scale!r}, lr_scale={lr_scale!r}; allowed: both > 0")
    out = []
    for p in phases:
        epochs = max(1, round(p.epochs * epoch_scale)) if p.epochs else 0
        out.append(replace(p, epochs=epochs, lr=p.lr * lr_scale, warmup_epochs=min(p.warmup_epochs * epoch_scale,
                                                                                    epochs)))
    return out


def subnet_epochs(phases) -> int:
    """Sum of epochs x sub-nets per step: the number of sub-net passes over the data a schedule spends."""
    return sum(p.epochs * p.subnets_per_step for p in phases)


SCHEDULES: Registry = Registry("ofa schedule")  # name -> (epoch_scale, lr_scale, ..., ps=None) -> phases


def _ps(epoch_scale: float, lr_scale: float, ps) -> list[Phase]:
    """The PS schedule a baseline matches: `ps` as given (a config's phases), else the paper's, scaled."""
    return list(ps) if ps is not None else scaled(PS_SCHEDULE, epoch_scale, lr_scale)


@SCHEDULES.register("progressive")
def progressive(epoch_scale: float = 1.0, lr_scale: float = 1.0, ps=None, **_) -> list[Phase]:
    return _ps(epoch_scale, lr_scale, ps)


@SCHEDULES.register("no_ps")
def no_ps(epoch_scale: float = 1.0, lr_scale: float = 1.0, subnets_per_step: int = 1, full_first: bool = False,
          ps=None, **_) -> list[Phase]:
    """Every dimension open at once for as many sub-net passes as PS spends (its full phase included).

    Default: from the first step, at the full-net lr, without KD (no trained teacher exists). `full_first`: PS's
    full-net phase first, then everything open at the kernel phase's lr with KD from it, isolating "progressive"
    from "distilled" (registered as no_ps_kd).
    """
    ps = _ps(epoch_scale, lr_scale, ps)
    head = ps[:1] if full_first else []
    total = subnet_epochs(ps) - subnet_epochs(head)
    lr = ps[1].lr if full_first else ps[0].lr
    warmup = (ps[1] if full_first else ps[0]).warmup_epochs
    return head + [Phase("no_ps", math.ceil(total / subnets_per_step), lr, kernel_sizes="all",
                         expand_ratios="all", depths="all", subnets_per_step=subnets_per_step, sampler="no_ps",
                         distill=full_first, warmup_epochs=warmup)]


@SCHEDULES.register("no_ps_kd")
def no_ps_kd(epoch_scale: float = 1.0, lr_scale: float = 1.0, ps=None, **kw) -> list[Phase]:
    """no_ps after PS's full-net phase, distilled from it (see no_ps)."""
    return no_ps(epoch_scale, lr_scale, full_first=True, ps=ps, **kw)


@SCHEDULES.register("sandwich")
def sandwich(epoch_scale: float = 1.0, lr_scale: float = 1.0, num_random: int = 2, ps=None, **_) -> list[Phase]:
    """BigNAS: largest + smallest + `num_random` random sub-nets per step with in-place distillation from the
    largest, everything open from the start, as many sub-net passes as PS spends, at its first phase's lr."""
    per_step = 2 + num_random
    ps = _ps(epoch_scale, lr_scale, ps)
    return [Phase("sandwich", math.ceil(subnet_epochs(ps) / per_step), ps[0].lr, kernel_sizes="all",
                  expand_ratios="all", depths="all", subnets_per_step=per_step, sampler="sandwich",
                  warmup_epochs=ps[0].warmup_epochs)]
