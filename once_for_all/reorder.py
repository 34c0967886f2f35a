"""Importance re-ordering of the expanded channels, run before each elastic-width phase (OFA
`re_organize_middle_weights`): afterwards a narrower sub-net keeps the most important channels.

Per block, expanded channels are sorted by descending L1 norm of their outgoing projection-1x1 weights, and
every tensor indexed by them is permuted alike: expand conv (out dim), its BN, depthwise conv and its BN (incl.
running stats), SE reduce (in dim) and SE expand (out dim, bias), projection (in dim). SE hidden units are first
sorted the same way by their outgoing SE-expand weights. The full-width network computes the same function;
narrower widths change (that is the point). Optimizer state of the same shape (momentum, Adam moments) is
permuted too when an optimizer is given.

`keep`: expand ratios whose channel groups a previous phase trained as narrower sub-nets (as the reference's
`expand_ratio_stage` > 0 does before its second expand phase). Channels are then sorted within nested groups
[0, w_smallest), [w_smallest, w_next), ..., [w_largest_kept, mid): a channel never crosses a group boundary, so an
e = 4 sub-net keeps its set of channels. The reference offsets importance by -1e5 per group; ordering by
(group, -L1) is the same permutation without the float offset. Empty `keep`: plain L1 sort (the first expand phase).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .supernet import OFASupernet


def _order(weight: Tensor, dim: int, bounds: tuple[int, ...] = ()) -> Tensor:
    """Indices sorting slices along `dim` by descending L1 norm (stable for ties), each within its group: slices
    [0, bounds[0]), [bounds[0], bounds[1]), ... keep their group (bounds ascending)."""
    other = [d for d in range(weight.dim()) if d != dim]
    importance = weight.abs().sum(dim=other)
    group = torch.bucketize(torch.arange(len(importance), device=importance.device),
                            torch.tensor(bounds, dtype=torch.long, device=importance.device), right=True)
    by_importance = torch.sort(importance, descending=True, stable=True).indices
    return by_importance[torch.sort(group[by_importance], stable=True).indices]  # group first, then importance


def _permute(t: Tensor, perm: Tensor, dim: int, optimizer: torch.optim.Optimizer | None) -> None:
    tensors = [t]
    if optimizer is not None and t in optimizer.state:
        tensors += [s for s in optimizer.state[t].values() if torch.is_tensor(s) and s.shape == t.shape]
    for x in tensors:
        x.copy_(x.index_select(dim, perm))


def _bn_tensors(bn: nn.Module) -> list[Tensor]:
    return [t for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var) if t is not None]


@torch.no_grad()
def reorder_channels(net: OFASupernet, optimizer: torch.optim.Optimizer | None = None,
                     keep: tuple[float, ...] = ()) -> None:
    """Sort every elastic block's expanded (and SE hidden) channels by importance, in place; the channel groups of
    the expand ratios in `keep` stay sets (see the module docstring)."""
    for block in net.blocks:
        mid = block.project[0].weight.shape[1]
        bounds = tuple(sorted({w for w in (block.mid_fn(e) for e in keep) if 0 < w < mid}))
        if block.se is not None:
            hidden = _order(block.se.expand.weight, 1)
            for t, dim in ((block.se.reduce.weight, 0), (block.se.reduce.bias, 0), (block.se.expand.weight, 1)):
                _permute(t, hidden, dim, optimizer)
        perm = _order(block.project[0].weight, 1, bounds)
        coupled = [(block.expand[0].weight, 0), (block.depthwise[0].weight, 0), (block.project[0].weight, 1)]
        coupled += [(t, 0) for t in _bn_tensors(block.expand[1]) + _bn_tensors(block.depthwise[1])]
        if block.se is not None:
            coupled += [(block.se.reduce.weight, 1), (block.se.expand.weight, 0), (block.se.expand.bias, 0)]
        for t, dim in coupled:
            _permute(t, perm, dim, optimizer)
