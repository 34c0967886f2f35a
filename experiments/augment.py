"""Per-batch data augmentation on tensors, seeded by (seed, step) so a resumed run replays it exactly."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from meter.registry import Registry

AUGMENTATIONS: Registry = Registry("augmentation")


@AUGMENTATIONS.register("none")
def none(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return x


@AUGMENTATIONS.register("crop_flip")
def crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """The standard CIFAR augmentation: zero-pad by 4, random crop back to size, horizontal flip with p = 1/2.
    x: [B, C, H, W] -> [B, C, H, W]."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)  # drawn on CPU: same on any device
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    out = _crop(padded, dy, dx, h, w)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


def _crop(padded: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Per-sample crops of `padded` [B, C, H+2p, W+2p] at offsets (dy, dx) [B] -> [B, C, H, W]."""
    b, c = padded.shape[:2]
    rows = (dy[:, None] + torch.arange(h, device=dy.device))  # [B, H]
    cols = (dx[:, None] + torch.arange(w, device=dx.device))  # [B, W]
    batch = torch.arange(b, device=dy.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def augment_batch(name: str, x: torch.Tensor, seed: int, step: int) -> torch.Tensor:
    if name == "none":
        return x
    return AUGMENTATIONS.get(name)(x, torch.Generator().manual_seed(seed * 7_368_787 + step))
