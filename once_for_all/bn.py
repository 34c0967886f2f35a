"""BatchNorm recalibration of a sub-network before it is evaluated (OFA `set_running_statistics`).

Running mean/var := the plain average over the given batches of each batch's mean and (unbiased) variance,
the same for every batch regardless of its size; not an EMA. Done with torch's own cumulative-average mode
(momentum=None) in train mode under no_grad, so it works on any module, including the supernet at its active
config, whose elastic BNs slice themselves to the active width: only the channels a sub-net uses are touched,
and BNs the batches never reach keep their statistics.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[Tensor]) -> int:
    """Recompute every BatchNorm's running statistics from `batches` (inputs the model takes, already at the
    right resolution/device). Returns the number of batches used; momentum and train/eval modes are restored."""
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    saved = {bn: (bn.momentum, bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
             for bn in bns}
    width: dict[nn.Module, int] = {}

    def record(m: nn.Module, args: tuple) -> None:
        width.setdefault(m, args[0].shape[1])

    hooks = [bn.register_forward_pre_hook(record) for bn in bns]
    modes = {m: m.training for m in model.modules()}
    n, done = 0, False
    try:
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
        model.train()
        for x in batches:
            model(x)
            n += 1
        if n == 0:
            raise ValueError("recalibrate_bn: batches is empty; allowed: one or more input batches")
        done = True
    finally:
        for h in hooks:
            h.remove()
        for m, training in modes.items():
            m.train(training)
        for bn, (momentum, mean, var, count) in saved.items():
            bn.momentum = momentum
            c = width.get(bn, 0) if done else 0  # channels this model used; the rest (all, on failure) restored
            bn.running_mean[c:], bn.running_var[c:] = mean[c:], var[c:]
            if c == 0:
                bn.num_batches_tracked.copy_(count)
    return n
