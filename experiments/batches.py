"""Where the training loop's batches come from: one protocol, two kinds of source.

A `BatchSource` yields the training batches of one epoch, in an order that is a pure function of (seed, epoch),
starting at any batch index, so a resumed run replays exactly what an uninterrupted one would have drawn. The
loop never indexes a dataset itself; it asks the source for `epoch(e, start=i)` and moves what it gets to its
device.

- `TensorBatches`: the whole split is one tensor pair in memory (MNIST, CIFAR, MNIST-1D): a batch is one index
  gather, the fastest loader there is; on a GPU the tensors can live on the device.
- streaming sources (`experiments.streaming`, when a dataset does not fit) wrap a `DataLoader` with workers and a
  sampler that follows the same (seed, epoch) order rule.

Under data parallel every source yields *this rank's* slice of each global batch (`distributed.shard`), so the
sum over ranks is the global batch a single process would have used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import torch

from experiments import distributed


class BatchSizeError(ValueError):
    """The global batch does not fit the data (or does not split over the ranks)."""


@runtime_checkable
class BatchSource(Protocol):
    """Training batches, epoch by epoch. `steps_per_epoch` fixed-shape batches per epoch (drop_last)."""

    steps_per_epoch: int
    batch_size: int  # the global batch: summed over ranks

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches start..steps_per_epoch-1 of `epoch`: (x [b, ...], y [b, ...]) with b = this rank's share."""
        ...


def iterations_per_epoch(n_train: int, batch_size: int) -> int:
    if n_train < batch_size:
        raise BatchSizeError(f"optim.batch_size={batch_size} is larger than the training set ({n_train} samples)")
    return n_train // batch_size  # drop_last: every batch has the same shape


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The permutation of n training samples used in `epoch` of a run seeded `seed` ([n] int64)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


class TensorBatches:
    """Batches gathered from in-memory tensors x [N, ...], y [N, ...] in `epoch_order(seed, epoch, N)`."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> None:
        if len(x) != len(y):
            raise ValueError(f"TensorBatches: x has {len(x)} rows but y has {len(y)}")
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.steps_per_epoch = iterations_per_epoch(len(x), batch_size)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = epoch_order(self.seed, epoch, len(self.x)).to(self.x.device)
        for i in range(start, self.steps_per_epoch):
            idx = distributed.shard(order[i * self.batch_size : (i + 1) * self.batch_size])
            yield self.x[idx], self.y[idx]
