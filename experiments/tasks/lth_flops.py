"""`flops/train_total_effective`: an LTH unit's training FLOPs with each masked layer scaled by its density.

`flops/train_total` stays the dense count (forward + backward of every step, as executed by dense kernels). The
effective figure is what a sparse kernel would need: one training step is counted once per module (forward and
backward, the package's one counter), each masked layer's share is multiplied by its density (kept / all weights
of that layer), and the dense total is scaled by the step's effective/dense ratio (every op here scales with the
batch, so the ratio of one step is that of every step). The same convention as `flops/infer_per_sample`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from lth import layer_densities
from meter.flops import flop_counter


def _output_tensor(out) -> torch.Tensor:
    out = out[0] if isinstance(out, (tuple, list)) else getattr(out, "logits", out)
    return out


def step_flops_by_module(model: nn.Module, batch: torch.Tensor) -> tuple[int, dict[str, int]]:
    """(total, {module FQN: forward + backward FLOPs}) of one training step on `batch` [B, ...] (on a copy in train
    mode; the loss is the output's sum: any scalar loss backpropagates through the same layers)."""
    model = copy.deepcopy(model).train()
    root = type(model).__name__
    param = next(model.parameters(), None)
    batch = batch.to(param.device) if param is not None else batch
    with flop_counter() as mode:
        _output_tensor(model(batch)).float().sum().backward()
    counts = {name: sum(per_op.values()) for name, per_op in mode.get_flop_counts().items()}
    total = counts.pop("Global", 0)
    return total, {("" if n == root else n.removeprefix(root + ".")): c for n, c in counts.items()}


def effective_train_flops(model: nn.Module, mask: dict[str, torch.Tensor], batch: torch.Tensor, dense_total: int) -> int:
    """`dense_total` scaled by one step's effective/dense FLOPs, a masked layer's FLOPs scaled by its density."""
    total, by_module = step_flops_by_module(model, batch)
    if total == 0:
        return dense_total
    removed = sum(by_module.get(name.rsplit(".", 1)[0], 0) * (1.0 - d) for name, d in layer_densities(mask).items())
    return int(round(dense_total * (total - removed) / total))
