"""The per-frame action space: {backbone at resolution r_1 > ... > r_n} ∪ {skip k_1, ..., k_m}.

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
    def num_actions(self) -> int:
        return len(self.resolutions) + len(self.skips)

    def skip_lengths(self) -> torch.Tensor:
        """[A] int64: 0 for backbone actions, k for skip-k actions."""
        return torch.tensor([0] * len(self.resolutions) + list(self.skips), dtype=torch.long)

    def names(self) -> list[str]:
        return [f"r{r}" for r in self.resolutions] + [f"skip{k}" for k in self.skips]


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
