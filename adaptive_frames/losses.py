"""Efficiency terms of the policy loss and the FLOPs-budget controller.

loss = task + lam * efficiency + beta * usage_balance, where efficiency = E[FLOPs per video] / (T * top-resolution
FLOPs per frame): the expected cost per frame relative to running the top backbone on it (1.0 = dense bound), so
lam does not depend on the size of the backbones. Multiply by the top per-frame GFLOPs to get GFLOPs per frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


def efficiency_term(flops: torch.Tensor, num_frames: int, top_frame_flops: float) -> torch.Tensor:
    """flops [B] (differentiable through the ST decisions) -> scalar relative cost per frame."""
    return flops.mean() / (num_frames * top_frame_flops)


def usage_balance(decisions: torch.Tensor, looked: torch.Tensor,
                  stats_sum: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Squared distance of the batch's action usage from uniform; decisions [B, T, A], looked [B, T] -> scalar.

    Stops the policy collapsing onto one action early in training (AR-Net's usage-balance term).
    stats_sum: under data parallelism, a differentiable sum over the ranks (e.g. sparse_moe.losses.all_reduce_sum)
    so the usage is the global batch's; its backward sums the ranks' gradients, which the gradient average divides
    back. Without it each rank balances its own shard.
    """
    a = decisions.shape[-1]
    counts = torch.cat([decisions.sum(dim=(0, 1)), looked.sum().reshape(1)])
    if stats_sum is not None:
        counts = stats_sum(counts)
    usage = counts[:a] / counts[a].clamp(min=1.0)
    return ((usage - 1.0 / a) ** 2).sum()


@dataclass
class BudgetController:
    """Dual ascent on lam so that mean FLOPs per video meets `target_flops`.

    After each batch: lam <- clip(lam + lr * (measured / target - 1), 0, lam_max). Over budget raises lam,
    under budget lowers it (to 0 at most: the budget is a ceiling, not a reason to waste accuracy).
    """

    target_flops: float
    lam: float = 0.0
    lr: float = 0.05
    lam_max: float = 10.0

    def __post_init__(self) -> None:
        if self.target_flops <= 0 or self.lr <= 0 or self.lam < 0:
            raise ValueError(
                f"BudgetController: target_flops={self.target_flops} and lr={self.lr} must be > 0, lam={self.lam} >= 0"
            )

    def update(self, measured_flops: float) -> float:
        self.lam = min(self.lam_max, max(0.0, self.lam + self.lr * (measured_flops / self.target_flops - 1.0)))
        return self.lam
