"""Shared helpers for the adaptive_frames tests (imported as a top-level module; pytest prepends this dir)."""

import torch
from torch import nn

from adaptive_frames.model import AdaptiveFrameModel, ModelConfig
from adaptive_frames.policy import PolicyConfig


class ScriptedPolicy(nn.Module):
    """Stands in for the policy: the action at a frame is the frame's (constant) pixel value, rounded.

    Lets a test fix the decision sequence by writing it into the clip: frame value v -> action v.
    """

    def __init__(self, num_actions: int, scale: float = 100.0) -> None:
        super().__init__()
        self.num_actions = num_actions
        self.scale = scale
        self.bias = nn.Parameter(torch.zeros(num_actions))
        self.calls = 0
        self.frames_seen = 0

    def init_state(self, n, device=None):
        return torch.zeros(n, 1, device=device)

    def encode(self, low):
        return low.mean(dim=(1, 2, 3))[:, None]  # [N, 1]

    def step(self, feat, state):
        self.calls += 1
        self.frames_seen += feat.shape[0]
        a = torch.arange(self.num_actions, dtype=feat.dtype)
        return -self.scale * (a[None, :] - feat) ** 2 + self.bias, state + 1


class CountingNet(nn.Module):
    """Records every frame it receives (by the frame's constant value) and returns zeros."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.received: list[float] = []
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        self.received += x.mean(dim=(1, 2, 3)).tolist()
        return torch.zeros(x.shape[0], self.num_classes)


def small_model(resolutions=(16, 8), skips=(1, 2, 4), num_classes=3, seed=0, policy_as_backbone=False
                ) -> AdaptiveFrameModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(num_classes=num_classes, in_channels=1, resolutions=list(resolutions), skips=list(skips),
                      policy=PolicyConfig(input_size=8, feature_dim=8, hidden=8),
                      policy_as_backbone=policy_as_backbone)
    return AdaptiveFrameModel(cfg)


def scripted_clips(actions: torch.Tensor, size: int = 16) -> torch.Tensor:
    """[B, T] actions -> clips [B, T, 1, size, size] whose frame (b, t) is constant = actions[b, t]."""
    return actions.float()[:, :, None, None, None].expand(-1, -1, 1, size, size).contiguous()

