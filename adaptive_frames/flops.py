"""Per-frame costs (counted once with meter.flops) and per-video FLOPs accounting at run time.

Convention: FLOPs = 2 x MAC (PyTorch FlopCounterMode); the AR-Net/FrameExit papers report MACs as "GFLOPs", so
summaries give both. Resizing to the policy/backbone resolution is not counted (FlopCounterMode counts it as 0;
an area resize is ~1 add per input pixel, below 1% of any backbone here).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from meter.flops import count_flops


@dataclass(frozen=True)
class FrameCosts:
    """Forward FLOPs of one frame: `policy` per looked-at frame, `backbone[i]` at resolution i, `policy_head` per
    frame classified by the policy's classification head (on features the policy computed anyway; 0 if none)."""

    policy: int
    backbone: tuple[int, ...]
    policy_head: int = 0

    @property
    def top(self) -> int:
        return self.backbone[0]


def _forward_flops(module: nn.Module, shape: tuple[int, ...]) -> int:
    """Forward FLOPs of `module` (in eval mode) on one zero input of `shape`."""
    was_training = module.training
    module.eval()
    try:
        where = next((p.device for p in module.parameters()), torch.device("cpu"))  # counted where it lives
        return count_flops(module, (torch.zeros(shape, device=where),)).forward
    finally:
        module.train(was_training)


def frame_flops(module: nn.Module, channels: int, size: int) -> int:
    """Forward FLOPs of `module` on one [1, channels, size, size] frame."""
    return _forward_flops(module, (1, channels, size, size))


def feature_flops(module: nn.Module, dim: int) -> int:
    """Forward FLOPs of `module` on one [1, dim] feature vector (e.g. a linear head)."""
    return _forward_flops(module, (1, dim))


def video_flops(
    costs: FrameCosts, looked: torch.Tensor, per_res: torch.Tensor, head: torch.Tensor | None = None,
) -> torch.Tensor:
    """FLOPs per video. looked: [B] frames the policy ran on; per_res: [B, R] frames sent to each backbone;
    head: [B] frames classified by the policy head (None: none)."""
    bb = torch.tensor(costs.backbone, dtype=torch.float64)
    flops = looked.double() * costs.policy + (per_res.double() * bb).sum(dim=1)
    return flops if head is None else flops + head.double() * costs.policy_head


def summarize_flops(flops: torch.Tensor, dense: float) -> dict[str, float]:
    """mean/p50/p95 GFLOPs and GMACs per video, and the mean as a fraction of the dense bound."""
    f = flops.double()
    out = {}
    for unit, div in (("gflops", 1e9), ("gmacs", 2e9)):
        out[f"{unit}/mean"] = float(f.mean() / div)
        out[f"{unit}/p50"] = float(f.quantile(0.5) / div)
        out[f"{unit}/p95"] = float(f.quantile(0.95) / div)
        out[f"{unit}/dense"] = float(dense / div)
    out["flops/fraction_of_dense"] = float(f.mean() / dense)
    return out
