"""Magnitude and random pruning, layer-wise or global, in a registry.

Every strategy prunes a *fraction of the remaining* weights of each group (IMP's per-level rate) and returns a new
mask that is a subset of the old one. Counts are rounded once per group, so the achieved density is the target to
within one weight per tensor (layer-wise) or per pooled group (global).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from lth.masks import Mask
from meter.registry import Registry

STRATEGIES: Registry = Registry("pruning strategy")


@dataclass(frozen=True)
class PruneRates:
    """Fraction of remaining weights pruned per level; `per_layer` overrides `default` by weight name."""

    default: float
    per_layer: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, rate in {"default": self.default, **self.per_layer}.items():
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"prune rate for {name!r} must be in [0, 1), got {rate}")

    def rate(self, name: str) -> float:
        return self.per_layer.get(name, self.default)


def _keep_top(scores: torch.Tensor, alive: torch.Tensor, n_keep: int) -> torch.Tensor:
    """Bool mask keeping the `n_keep` highest scores among `alive` positions. scores, alive: [N]."""
    scores = torch.where(alive, scores, torch.full_like(scores, -1.0))
    keep = torch.zeros_like(alive)
    keep[torch.topk(scores, n_keep, sorted=False).indices] = True
    return keep


def _n_keep(alive: int, rate: float) -> int:
    return alive - int(round(rate * alive))


def _prune(model: nn.Module, mask: Mask, rates: PruneRates, scope: str, scorer, generator) -> Mask:
    params = dict(model.named_parameters())
    new: Mask = {}
    # Layers with their own rate are pruned on their own; in global scope the rest is pooled.
    pooled = [n for n in mask if scope == "global" and n not in rates.per_layer]
    for name in mask:
        if name in pooled:
            continue
        alive = mask[name].flatten()
        scores = scorer(params[name].detach().flatten(), generator)
        keep = _keep_top(scores, alive, _n_keep(int(alive.sum()), rates.rate(name)))
        new[name] = keep.view_as(mask[name])
    if pooled:
        alive = torch.cat([mask[n].flatten() for n in pooled])
        scores = torch.cat([scorer(params[n].detach().flatten(), generator) for n in pooled])
        keep = _keep_top(scores, alive, _n_keep(int(alive.sum()), rates.default))
        for name, chunk in zip(pooled, keep.split([mask[n].numel() for n in pooled])):
            new[name] = chunk.view_as(mask[name])
    return new


def _magnitude(w: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return w.abs().float()


def _random(w: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(w.shape, generator=generator)


@STRATEGIES.register("magnitude_layerwise")
def magnitude_layerwise(model, mask, rates, generator=None) -> Mask:
    return _prune(model, mask, rates, "layerwise", _magnitude, generator)


@STRATEGIES.register("magnitude_global")
def magnitude_global(model, mask, rates, generator=None) -> Mask:
    return _prune(model, mask, rates, "global", _magnitude, generator)


@STRATEGIES.register("random_layerwise")
def random_layerwise(model, mask, rates, generator=None) -> Mask:
    return _prune(model, mask, rates, "layerwise", _random, generator)


@STRATEGIES.register("random_global")
def random_global(model, mask, rates, generator=None) -> Mask:
    return _prune(model, mask, rates, "global", _random, generator)


def random_mask_like(mask: Mask, generator: torch.Generator, scope: str = "layerwise") -> Mask:
    """Random-pruning baseline at the same density as `mask`.

    layerwise: per layer, the same number of kept weights at uniformly random positions;
    global: the same total number kept, at uniformly random positions over all layers pooled.
    """
    if scope not in ("layerwise", "global"):
        raise ValueError(f"random pruning scope {scope!r} is not one of layerwise, global")
    groups = [[n] for n in mask] if scope == "layerwise" else [list(mask)]
    out: Mask = {}
    for names in groups:
        sizes = [mask[n].numel() for n in names]
        flat = torch.zeros(sum(sizes), dtype=torch.bool)
        flat[torch.randperm(sum(sizes), generator=generator)[: sum(int(mask[n].sum()) for n in names)]] = True
        for name, chunk in zip(names, flat.split(sizes)):
            out[name] = chunk.view_as(mask[name])
    return out


def compound(rates: PruneRates, levels: int) -> PruneRates:
    """The one-shot rates that reach, in one step, the density of `levels` iterative steps at `rates`."""
    def c(r: float) -> float:
        return 1.0 - (1.0 - r) ** levels

    return PruneRates(c(rates.default), {n: c(r) for n, r in rates.per_layer.items()})
