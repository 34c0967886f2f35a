"""Batches from clips held in memory: indexing tensors directly (no per-sample Python, no workers)."""

from __future__ import annotations

from collections.abc import Iterator

import torch


class ClipLoader:
    """Yields (clips [b, T, C, H, W], labels [b, ...], index [b]); reshuffled per pass from (seed, pass number).

    Data parallel: `batch_size` is the global batch; rank `rank` of `world_size` gets its contiguous
    b / world_size slice of each (the same order on every rank); a last partial batch that does not divide over
    the ranks is dropped (every rank must take the same steps)."""

    def __init__(self, clips: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"ClipLoader: batch_size={batch_size} must be >= 1")
        if batch_size % world_size or not 0 <= rank < world_size:
            raise ValueError(f"ClipLoader: batch_size={batch_size} over {world_size} ranks (rank {rank}); allowed: a "
                             f"multiple of {world_size}")
        self.rank, self.world_size = rank, world_size
        if len(clips) != len(labels):
            raise ValueError(f"ClipLoader: {len(clips)} clips but {len(labels)} labels")
        self.clips, self.labels, self.batch_size, self.shuffle, self.seed = clips, labels, batch_size, shuffle, seed
        self.passes = 0

    def __len__(self) -> int:
        return (len(self.clips) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        n = len(self.clips)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.passes))
        else:
            order = torch.arange(n)
        self.passes += 1
        for i in range(0, n, self.batch_size):
            idx = order[i : i + self.batch_size]
            if self.world_size > 1:
                if len(idx) % self.world_size:
                    break  # a last batch that does not divide over the ranks
                per = len(idx) // self.world_size
                idx = idx[self.rank * per : (self.rank + 1) * per]  # [b / world]
            yield self.clips[idx], self.labels[idx], idx
