"""Compute that really skips: each backbone receives only the frames assigned to it (gather -> run -> scatter)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, size, size]; area averaging (anti-aliased); identity at native size."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="area")


# Frames per backbone call. Measured on a 2-core CPU, one thread, tiny_cnn at 64 px: 2048 frames in one call
# 2.36-2.60 s, in calls of 64 frames 0.54-0.65 s (activations that fit in cache). Same FLOPs, ~4x less time.
FRAMES_PER_CALL = 64


@dataclass
class VideoResult:
    """logits [B, K] (mean over processed frames, zeros if none); looked [B] frames the policy ran on;
    per_res [B, R] frames each backbone ran on (backbones only); flops [B]; actions [B, T] (-1 = not looked at),
    if any; head [B] frames classified by the policy head instead of a backbone, None where there is no such
    action. Processed frames per video = per_res.sum(1) (+ head); each is also counted in `looked`."""

    logits: torch.Tensor
    looked: torch.Tensor
    per_res: torch.Tensor
    flops: torch.Tensor
    actions: torch.Tensor | None = None
    head: torch.Tensor | None = None


def merge_means(mean: torch.Tensor, count: torch.Tensor, extra_sum: torch.Tensor, extra_count: torch.Tensor
                ) -> torch.Tensor:
    """Mean logits [B, K] over `count` [B] frames plus frames whose logits sum to `extra_sum` [B, K], counted by
    `extra_count` [B] -> mean over all of them [B, K] (zeros where there are none)."""
    n = count.to(mean.device, mean.dtype)
    extra = extra_count.to(mean.device, mean.dtype)
    return (mean * n[:, None] + extra_sum) / (n + extra).clamp(min=1)[:, None]


def run_assigned(
    backbones: nn.ModuleList, resolutions: tuple[int, ...], clips: torch.Tensor, assign: torch.Tensor, num_classes: int,
    chunk: int = FRAMES_PER_CALL,
) -> tuple[torch.Tensor, torch.Tensor]:
    """clips [B, T, C, H, W], assign [B, T] int (i = backbone i, -1 = not processed).

    Returns (mean logits [B, K], frames per backbone [B, R]). Backbone i runs only on its frames, `chunk` at a time.
    """
    b = clips.shape[0]
    total = clips.new_zeros(b, num_classes)
    per_res = torch.zeros(b, len(resolutions), dtype=torch.long)
    for i, (net, size) in enumerate(zip(backbones, resolutions)):
        vid, frame = (assign == i).nonzero(as_tuple=True)
        if vid.numel() == 0:
            continue
        out = torch.cat([net(resize(clips[vid[j : j + chunk], frame[j : j + chunk]], size))
                         for j in range(0, vid.numel(), chunk)])  # [n_i, K]
        total = total.index_add(0, vid, out)
        per_res[:, i] = torch.bincount(vid, minlength=b)
    count = per_res.sum(dim=1, keepdim=True).clamp(min=1).to(total.dtype)
    return total / count, per_res
