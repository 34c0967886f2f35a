"""Procedurally generated "needle frames" video task, seeded and held in memory.

Each clip has `num_frames` frames of Gaussian noise. `informative` of them (random positions) carry the class:
a fine oriented grating (orientation = class, period `period` px at full size) under a smooth envelope, marked
by a faint low-frequency blob of contrast `marker_contrast` at the same place. Other frames are distractors (noise);
with probability `decoy_prob` (default 0) a distractor carries the grating of a *wrong* class but no blob, so
sampling frames blindly is misled rather than merely uninformed. The blob survives downsampling (a policy on a low-resolution copy can find the needles, at
the cost of looking at every frame); the grating does not (it is close to Nyquist at full size), so reading the
class needs a high-resolution backbone. Nothing here depends on how any model is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class NeedleConfig:
    num_classes: int = 8
    num_frames: int = 16
    informative: int = 2
    channels: int = 1
    size: int = 64
    noise: float = 1.0
    amplitude: float = 3.0
    marker_contrast: float = 0.6
    envelope_sigma: float = 6.0
    marker_sigma: float = 8.0
    period: float = 2.5
    decoy_prob: float = 0.0
    num_train: int = 512
    num_test: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.informative <= self.num_frames:
            raise ValueError(f"NeedleConfig.informative={self.informative} must be in [1, num_frames={self.num_frames}]")
        if self.num_classes < 2:
            raise ValueError(f"NeedleConfig.num_classes={self.num_classes} must be >= 2")
        if self.size < 8 or self.channels < 1:
            raise ValueError(f"NeedleConfig.size={self.size} must be >= 8 and channels={self.channels} >= 1")
        if not 0.0 <= self.decoy_prob <= 1.0:
            raise ValueError(f"NeedleConfig.decoy_prob={self.decoy_prob} must be in [0, 1]")
        if self.period <= 2.0:
            raise ValueError(f"NeedleConfig.period={self.period} must be > 2 px (Nyquist at full size)")


@dataclass
class ClipSet:
    """clips [N, T, C, H, W] float32, labels [N] int64, informative [N, T] bool (ground truth, for the oracle)."""

    clips: torch.Tensor
    labels: torch.Tensor
    informative: torch.Tensor

    def __len__(self) -> int:
        return self.clips.shape[0]


def _render(cfg: NeedleConfig, n: int, g: torch.Generator) -> ClipSet:
    t, s, k = cfg.num_frames, cfg.size, cfg.num_classes
    labels = torch.randint(k, (n,), generator=g)
    ranks = torch.rand(n, t, generator=g).argsort(dim=1).argsort(dim=1)
    informative = ranks < cfg.informative  # [N, T]
    # Decoys: a wrong class (uniform over the other k-1) on a random subset of distractor frames.
    decoy = (~informative) & (torch.rand(n, t, generator=g) < cfg.decoy_prob)
    wrong = (labels[:, None] + 1 + torch.randint(k - 1, (n, t), generator=g)) % k
    cls = torch.where(informative, labels[:, None].expand(n, t), wrong)  # [N, T]
    has_texture = (informative | decoy).float()

    margin = 2.0 * cfg.envelope_sigma
    cx = margin + torch.rand(n, t, generator=g) * (s - 1 - 2 * margin)
    cy = margin + torch.rand(n, t, generator=g) * (s - 1 - 2 * margin)
    phase = torch.rand(n, t, generator=g) * 2 * math.pi
    theta = cls.float() * math.pi / k
    ys, xs = torch.meshgrid(torch.arange(s, dtype=torch.float32), torch.arange(s, dtype=torch.float32), indexing="ij")
    dx = xs - cx[..., None, None]  # [N, T, H, W]
    dy = ys - cy[..., None, None]
    r2 = dx**2 + dy**2
    along = dx * torch.cos(theta)[..., None, None] + dy * torch.sin(theta)[..., None, None]
    grating = torch.cos(2 * math.pi * along / cfg.period + phase[..., None, None])
    envelope = torch.exp(-r2 / (2 * cfg.envelope_sigma**2))
    blob = torch.exp(-r2 / (2 * cfg.marker_sigma**2))
    signal = cfg.amplitude * has_texture[..., None, None] * envelope * grating
    signal = signal + cfg.marker_contrast * informative.float()[..., None, None] * blob
    noise = cfg.noise * torch.randn(n, t, cfg.channels, s, s, generator=g)
    return ClipSet(clips=noise + signal[:, :, None], labels=labels, informative=informative)


def make_needle_splits(cfg: NeedleConfig, chunk: int = 128) -> tuple[ClipSet, ClipSet]:
    """(train, test) generated from `cfg.seed`; the same config always gives the same tensors."""
    out = []
    for split, n in enumerate((cfg.num_train, cfg.num_test)):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + split)
        parts = [_render(cfg, min(chunk, n - i), g) for i in range(0, n, chunk)]
        out.append(ClipSet(
            clips=torch.cat([p.clips for p in parts]),
            labels=torch.cat([p.labels for p in parts]),
            informative=torch.cat([p.informative for p in parts]),
        ))
    return out[0], out[1]
