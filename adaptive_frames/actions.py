"""The per-frame action space: {backbone at resolution r_1 > ... > r_n} [∪ {policy head}] ∪ {skip k_1, ..., k_m}.

Action indices: 0..n-1 the backbones, then (if `policy_head`) index n, the policy head (the frame, already encoded
by the policy, is classified by a linear head on the policy's features: AR-Net's cheapest "backbone"), then the
skips in order.

Skip k (AR-Net semantics): the current frame, which the policy has looked at, is not processed, and the next k-1
frames are neither looked at nor processed. Skip 1 therefore drops only the current frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ActionSpace:
    resolutions: tuple[int, ...] = (64, 48, 32)
    skips: tuple[int, ...] = (1, 2, 4)
    policy_head: bool = False

    def __post_init__(self) -> None:
        res, sk = tuple(self.resolutions), tuple(self.skips)
        if not res or any(r <= 0 for r in res) or list(res) != sorted(set(res), reverse=True):
            raise ValueError(f"ActionSpace.resolutions={res} must be distinct positive ints in descending order")
        if any(k < 1 for k in sk) or len(set(sk)) != len(sk):
            raise ValueError(f"ActionSpace.skips={sk} must be distinct ints >= 1")
        object.__setattr__(self, "resolutions", res)
        object.__setattr__(self, "skips", sk)

    @property
    def num_resolutions(self) -> int:
        return len(self.resolutions)

    @property
    def num_processing(self) -> int:
        """Actions that classify the frame: the backbones, then the policy head if any (indices 0..P-1)."""
        return len(self.resolutions) + int(self.policy_head)

    @property
    def head_index(self) -> int | None:
        """The policy-head action's index, None without one."""
        return len(self.resolutions) if self.policy_head else None

    @property
    def num_actions(self) -> int:
        return self.num_processing + len(self.skips)

    def skip_lengths(self) -> torch.Tensor:
        """[A] int64: 0 for backbone and policy-head actions, k for skip-k actions."""
        return torch.tensor([0] * self.num_processing + list(self.skips), dtype=torch.long)

    def names(self) -> list[str]:
        head = ["policy"] if self.policy_head else []
        return [f"r{r}" for r in self.resolutions] + head + [f"skip{k}" for k in self.skips]


def skip_bookkeeping(actions: torch.Tensor, space: ActionSpace) -> tuple[torch.Tensor, torch.Tensor]:
    """Replay per-step decisions with skip semantics.

    actions: [B, T] int, the action the policy would take at each frame if it looked (ignored where it does not).
    Returns (looked [B, T] bool, taken [B, T] int64 with -1 where the frame was not looked at).
    """
    b, t = actions.shape
    skip_len = space.skip_lengths().to(actions.device)
    remaining = torch.zeros(b, dtype=torch.long, device=actions.device)
    looked = torch.zeros(b, t, dtype=torch.bool, device=actions.device)
    taken = torch.full((b, t), -1, dtype=torch.long, device=actions.device)
    for i in range(t):
        active = remaining == 0
        looked[:, i] = active
        a = actions[:, i].long()
        taken[:, i] = torch.where(active, a, -1)
        remaining = torch.where(active, (skip_len[a] - 1).clamp(min=0), remaining - 1)
    return looked, taken
