"""The policy: a light per-frame encoder on a low-resolution copy + a recurrent cell -> action logits."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from meter.registry import Registry

from .backbones import build_backbone

CELLS: Registry[type[nn.Module]] = Registry("recurrent cell")


@CELLS.register("gru")
class GRUStep(nn.Module):
    """state [N, H] -> (output [N, H], state [N, H])."""

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.cell = nn.GRUCell(in_dim, hidden)
        self.state_size = hidden

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.cell(x, state)
        return h, h


@CELLS.register("lstm")
class LSTMStep(nn.Module):
    """state [N, 2H] = cat(h, c) -> (output h [N, H], state [N, 2H])."""

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(in_dim, hidden)
        self.hidden = hidden
        self.state_size = 2 * hidden

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = self.cell(x, (state[:, : self.hidden], state[:, self.hidden :]))
        return h, torch.cat([h, c], dim=1)


@dataclass
class PolicyConfig:
    encoder: str = "tiny_cnn"  # any BACKBONES name, e.g. "mobilenet_v2"
    width_mult: float = 1.0
    input_size: int = 16  # side of the low-resolution copy the policy sees
    feature_dim: int = 32
    hidden: int = 32
    cell: str = "gru"

    def __post_init__(self) -> None:
        for key in ("input_size", "feature_dim", "hidden"):
            if getattr(self, key) < 1:
                raise ValueError(f"PolicyConfig.{key}={getattr(self, key)} must be >= 1")


class Policy(nn.Module):
    """Encoder + recurrent cell + action head; with num_classes > 0 also `classifier`, a linear classification head
    on the encoder's features (the policy-head action: AR-Net's policy acting as the cheapest backbone)."""

    def __init__(self, cfg: PolicyConfig, in_channels: int, num_actions: int, num_classes: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = build_backbone(cfg.encoder, in_channels, cfg.feature_dim, cfg.width_mult)
        self.cell = CELLS.get(cfg.cell)(cfg.feature_dim, cfg.hidden)
        self.head = nn.Linear(cfg.hidden, num_actions)
        self.classifier = nn.Linear(cfg.feature_dim, num_classes) if num_classes > 0 else None

    def init_state(self, n: int, device: torch.device | None = None) -> torch.Tensor:
        return torch.zeros(n, self.cell.state_size, device=device)

    def encode(self, low: torch.Tensor) -> torch.Tensor:  # [N, C, s, s] -> [N, F]
        return torch.relu(self.encoder(low))

    def classify(self, feat: torch.Tensor) -> torch.Tensor:
        """feat [N, F] (from `encode`) -> class logits [N, K]. Only with a classifier (num_classes > 0)."""
        if self.classifier is None:
            raise RuntimeError("Policy.classify: this policy was built without a classification head")
        return self.classifier(feat)

    def step(self, feat: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feat [N, F], state [N, S] -> (action logits [N, A], new state [N, S])."""
        out, state = self.cell(feat, state)
        return self.head(out), state


class PolicyStep(nn.Module):
    """encode + step on one frame: the work done per looked-at frame (what its FLOPs are counted on)."""

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        logits, _ = self.policy.step(self.policy.encode(low), self.policy.init_state(low.shape[0], low.device))
        return logits
