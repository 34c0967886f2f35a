"""Capacity in one place: turn token-choice routing into flat (token, expert, weight) assignments.

Priority is choice-major: every token's first choice is placed before any second choice, and within a choice
rank tokens keep their order, so a first choice is never displaced by a second choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .routers import Routing


@dataclass
class Assignments:
    """Flat assignments token [N], expert [N], weight [N] (fp32); `requested` [E] counts choices asked for
    before capacity, `dropped` the number of those refused by capacity, `capacity` the per-expert limit
    (None = dropless)."""

    token: torch.Tensor
    expert: torch.Tensor
    weight: torch.Tensor
    requested: torch.Tensor
    dropped: torch.Tensor
    capacity: int | None


def expert_capacity(capacity_factor: float | None, top_k: int, num_tokens: int, num_experts: int) -> int | None:
    """ceil(cf * k * T / E); None when dropless (cf None or 0). cf >= E / k gives C >= T: nothing can drop."""
    if not capacity_factor:
        return None
    return max(1, math.ceil(capacity_factor * top_k * num_tokens / num_experts))


def position_in_expert(expert: torch.Tensor, num_experts: int) -> torch.Tensor:
    """expert [N] -> for each entry, how many earlier entries chose the same expert (stable rank)."""
    order = torch.argsort(expert, stable=True)
    counts = torch.bincount(expert, minlength=num_experts)
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.empty_like(expert)
    pos[order] = torch.arange(expert.numel(), device=expert.device) - starts[expert[order]]
    return pos


def token_choice_assignments(
    routing: Routing, num_experts: int, capacity_factor: float | None, num_valid: int
) -> Assignments:
    t, k = routing.expert.shape
    expert = routing.expert.t().reshape(-1)  # choice-major [k * T]
    weight = routing.weight.t().reshape(-1)
    token = torch.arange(t, device=expert.device).repeat(k)
    active = routing.active.t().reshape(-1)
    token, expert, weight = token[active], expert[active], weight[active]
    requested = torch.bincount(expert, minlength=num_experts)
    cap = expert_capacity(capacity_factor, k, num_valid, num_experts)
    if cap is None:
        return Assignments(token, expert, weight, requested, requested.new_zeros(()), None)
    keep = position_in_expert(expert, num_experts) < cap
    dropped = (~keep).sum()
    return Assignments(token[keep], expert[keep], weight[keep], requested, dropped, cap)
