"""Video metrics: top-1 accuracy and multi-label mean average precision (as in the AR-Net/FrameExit papers)."""

from __future__ import annotations

import torch


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """logits [N, K], labels [N] int -> fraction correct."""
    return float((logits.argmax(dim=1) == labels).double().mean())


def average_precision(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """scores [N], targets [N] in {0, 1} -> AP = mean over positives of precision at their rank (ties: stable)."""
    if targets.sum() == 0:
        raise ValueError("average_precision: targets has no positive")
    order = torch.argsort(scores, descending=True, stable=True)
    t = targets[order].double()
    precision_at = t.cumsum(0) / torch.arange(1, len(t) + 1, dtype=torch.float64)
    return float((precision_at * t).sum() / t.sum())


def mean_average_precision(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """scores [N, K], multi-hot targets [N, K] -> mean AP over classes with at least one positive."""
    if scores.shape != targets.shape or scores.dim() != 2:
        raise ValueError(f"mean_average_precision: scores {tuple(scores.shape)} and targets "
                         f"{tuple(targets.shape)} must both be [N, K]")
    aps = [average_precision(scores[:, k], targets[:, k]) for k in range(scores.shape[1]) if targets[:, k].any()]
    if not aps:
        raise ValueError("mean_average_precision: no class has a positive")
    return sum(aps) / len(aps)
