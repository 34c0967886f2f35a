"""TSN segment sampling: one frame per segment, random offset in training, centre in evaluation."""

from __future__ import annotations

import torch


def tsn_indices(num_frames: int, num_segments: int, train: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """[num_segments] 0-based frame indices, non-decreasing.

    num_frames >= num_segments: segment i spans [i*L, (i+1)*L) with L = num_frames / num_segments; training draws
    a uniform offset inside the segment, evaluation takes its centre. Shorter videos repeat frames evenly.
    """
    if num_frames < 1 or num_segments < 1:
        raise ValueError(f"tsn_indices: num_frames={num_frames} and num_segments={num_segments} must be >= 1")
    seg = torch.arange(num_segments, dtype=torch.float64)
    if num_frames < num_segments:
        return (seg * num_frames / num_segments).floor().long()
    length = num_frames / num_segments
    if train:
        start = (seg * length).floor()
        end = ((seg + 1) * length).floor()
        u = torch.rand(num_segments, generator=generator, dtype=torch.float64)
        return (start + (u * (end - start)).floor()).long().clamp(max=num_frames - 1)
    return (seg * length + length / 2).floor().long().clamp(max=num_frames - 1)
