"""The ofa task on streaming data (`data.in_memory=false`): the supernet and the from-scratch baselines train from
the streaming source (a DataLoader with workers, `once_for_all.SourceBatches`), while BN recalibration and sub-net
evaluation, which run thousands of times per job, read in-memory subsets drawn once from the streamed splits with
the evaluation transform (as the reference: BN statistics from 2,000 training images, sub-nets scored on a held-out
subset). What was held in memory is stated in every row (`ofa/eval_data`)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from experiments.streaming import StreamingSplits, eval_loader
from once_for_all.supernet import resize_input


class _Indexed:
    """Samples `idx` of a sample dataset, in that order (a sample dataset itself: `len`, `load`)."""

    def __init__(self, dataset, idx: torch.Tensor) -> None:
        self.dataset, self.idx = dataset, idx.tolist()

    def __len__(self) -> int:
        return len(self.idx)

    def load(self, index: int, generator: torch.Generator | None):
        return self.dataset.load(self.idx[index], generator)


def materialise(data: StreamingSplits, dataset, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples `idx` of `dataset` read through the evaluation loader (workers): (x [n, C, H, W], y [n])."""
    xs, ys = [], []
    for x, y, bad in eval_loader(_Indexed(dataset, idx), data.loader):
        data._counter.check(bad)  # an unreadable file: the input error naming it (or skipped and counted)
        if x is not None:
            xs.append(x)
            ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def subset_index(n: int, limit: int | None, seed: int) -> torch.Tensor:
    """The whole split in index order, or a seeded subset of `limit` samples (sorted: read in file order)."""
    if limit is None or limit >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:limit].sort().values


def hold_eval_sets(data: StreamingSplits, method, seed: int) -> tuple[list[torch.Tensor], str]:
    """Put in-memory val/test subsets on `data` (x_val, y_val, x_test, y_test tensors) and return the BN
    recalibration batches (the same seeded choice of training samples as `ofa_eval.recalibration_set`) and the
    row's description of what was held."""
    for split in ("val", "test"):
        ds = getattr(data, split)
        x, y = materialise(data, ds, subset_index(len(ds), method.eval_samples, seed))
        setattr(data, f"x_{split}", x)
        setattr(data, f"y_{split}", y)
    n = min(method.bn_recal_samples, len(data.train))
    idx = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))[:n]
    x_recal, _ = materialise(data, data.train, idx)
    note = (f"streamed; in memory (evaluation transform): BN recalibration {len(x_recal)} of {len(data.train)} train, "
            f"val {len(data.x_val)} of {len(data.val)}, test {len(data.x_test)} of {len(data.test)}")
    return list(x_recal.chunk(method.bn_recal_batches)), note


class Resized:
    """A batch source (`steps_per_epoch`, `epoch(e, start)`) whose inputs are resized to `resolution`."""

    def __init__(self, source, resolution: int) -> None:
        self.source, self.resolution = source, resolution
        self.steps_per_epoch = source.steps_per_epoch

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.source.epoch(epoch, start):
            yield resize_input(x, self.resolution), y
