"""Straight-through Gumbel-softmax and the exponential temperature schedule."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def temperature(epoch: int | float, tau0: float = 5.0, gamma: float = 0.045) -> float:
    """tau = tau0 * exp(-gamma * epoch) (AR-Net: tau0=5, gamma=0.045)."""
    if tau0 <= 0 or gamma < 0:
        raise ValueError(f"temperature: tau0={tau0} must be > 0 and gamma={gamma} >= 0")
    return tau0 * math.exp(-gamma * epoch)


def gumbel_softmax_st(logits: torch.Tensor, tau: float, generator: torch.Generator | None = None,
                      shard: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """Hard one-hot sample in the forward pass, gradient of the soft sample in the backward pass.

    logits: [B, ..., A] -> [B, ..., A] with exactly one 1 per row (forward); d/dlogits = d softmax((logits+g)/tau).
    shard (rank, world): `logits` is rank's 1/world of a global batch; the noise of the whole global batch is
    drawn and this rank's rows kept, so with one generator seed on every rank the ranks together draw exactly
    what one process draws for the global batch.
    """
    if tau <= 0:
        raise ValueError(f"gumbel_softmax_st: tau={tau} must be > 0")
    rank, world = shard
    b = logits.shape[0]
    # drawn where the generator lives (a CPU generator gives the same noise for a GPU run), then moved
    where = generator.device if generator is not None else logits.device
    u = torch.rand((b * world, *logits.shape[1:]), generator=generator, dtype=logits.dtype, device=where)
    u = u[rank * b:(rank + 1) * b].to(logits.device)
    e = (-torch.log(u.clamp_min(1e-20))).clamp_min(1e-20)  # Exp(1) sample
    g = -torch.log(e)
    soft = F.softmax((logits + g) / tau, dim=-1)
    return straight_through(soft)


def straight_through(soft: torch.Tensor) -> torch.Tensor:
    """One-hot of argmax(soft) forward, identity gradient to `soft` backward."""
    hard = F.one_hot(soft.argmax(dim=-1), soft.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft
