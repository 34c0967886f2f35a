"""Linear mode connectivity (Frankle et al. 2020, "Linear Mode Connectivity and the Lottery Ticket Hypothesis").

Two trained networks W_a, W_b are evaluated along the line W(alpha) = (1 - alpha) W_a + alpha W_b. With E(alpha)
the test error in percent, the error barrier is

    barrier = max_alpha E(alpha) - (E(0) + E(1)) / 2        (percentage points; >= 0 since alpha in {0, 1} is included)

and the pair is linearly mode connected ("stable") when the barrier is at most 2 points, the paper's threshold.
The paper evaluates 30 evenly spaced alphas. Interpolating two networks that share a mask keeps pruned weights at
exactly 0 ((1 - alpha) * 0 + alpha * 0), so the whole path lies in the sparse subnetwork.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

StateDict = dict[str, torch.Tensor]
STABLE_THRESHOLD_POINTS = 2.0


def interpolate(a: StateDict, b: StateDict, alpha: float) -> StateDict:
    """(1 - alpha) * a + alpha * b for floating tensors (BatchNorm running stats included); integer tensors
    (e.g. `num_batches_tracked`) are taken from `a`. Keys and shapes must match."""
    if a.keys() != b.keys():
        raise ValueError(f"state dicts differ in keys: only in a {sorted(a.keys() - b.keys())}, "
                         f"only in b {sorted(b.keys() - a.keys())}")
    out = {}
    for k, ta in a.items():
        tb = b[k]
        if ta.shape != tb.shape:
            raise ValueError(f"state dicts differ in shape at {k!r}: {tuple(ta.shape)} vs {tuple(tb.shape)}")
        out[k] = torch.lerp(ta, tb.to(ta.dtype), alpha) if ta.is_floating_point() else ta.clone()
    return out


def error_barrier(errors: list[float]) -> float:
    """max(errors) - mean(errors[0], errors[-1]), in the units of `errors` (percentage points here)."""
    if len(errors) < 2:
        raise ValueError(f"an error barrier needs the two endpoints at least, got {len(errors)} errors")
    return max(errors) - (errors[0] + errors[-1]) / 2


def is_stable(barrier: float, threshold: float = STABLE_THRESHOLD_POINTS) -> bool:
    """Linearly mode connected: barrier (points) <= threshold (Frankle et al. 2020 use 2 points)."""
    return barrier <= threshold


@dataclass
class LinearPath:
    alphas: list[float]
    errors: list[float]  # percent, 0..100, one per alpha
    barrier: float  # percentage points

    def is_stable(self, threshold: float = STABLE_THRESHOLD_POINTS) -> bool:
        return is_stable(self.barrier, threshold)


def linear_path(a: StateDict, b: StateDict, error_rate: Callable[[StateDict], float],
                num_points: int = 30) -> LinearPath:
    """Evaluate `error_rate` (a fraction in [0, 1]) at alpha = linspace(0, 1, num_points) between a and b."""
    if num_points < 2:
        raise ValueError(f"num_points must be >= 2 (both endpoints), got {num_points}")
    alphas = torch.linspace(0.0, 1.0, num_points, dtype=torch.float64).tolist()
    errors = []
    for alpha in alphas:
        e = float(error_rate(interpolate(a, b, alpha)))
        if not 0.0 <= e <= 1.0:
            raise ValueError(f"error_rate must return a fraction in [0, 1], got {e} at alpha={alpha}")
        errors.append(100.0 * e)
    return LinearPath(alphas, errors, error_barrier(errors))


def classification_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                         batch_size: int = 4096) -> Callable[[StateDict], float]:
    """An `error_rate` for `linear_path`: loads a state dict into a copy of `model` (eval mode) and returns the
    fraction of (x [N, ...], y [N]) it misclassifies."""
    net = copy.deepcopy(model).eval()

    @torch.no_grad()
    def error_rate(state: StateDict) -> float:
        net.load_state_dict(state)
        wrong = sum(int((net(x[i:i + batch_size]).argmax(1) != y[i:i + batch_size]).sum())
                    for i in range(0, len(x), batch_size))
        return wrong / len(x)

    return error_rate
