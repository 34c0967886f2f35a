"""Streaming batch sources: a `DataLoader` with workers over a map-style dataset, for data that does not fit.

A *sample dataset* is anything with `__len__` and `load(index, generator) -> (x, y)`: `generator` is a
`torch.Generator` seeded by (seed, epoch, index) for a training draw (random crops, flips, segment offsets) and
None for evaluation (deterministic transforms). Because the randomness of a sample depends only on that key, and
the batch order only on (seed, epoch) (`epoch_order`, as for `TensorBatches`), 0 or N workers give the same
batches and a resume at batch i of an epoch replays exactly what an uninterrupted run would have drawn.

A sample that cannot be read raises OSError naming its file; the loader hands it back as a `BadSample` (no
exception crosses the worker boundary) and the main process raises `InputError` naming the file, or, with
`skip_bad`, drops it from its batch and counts it (`StreamingSplits.skipped`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader, Dataset

from experiments import distributed
from experiments.batches import TensorBatches, epoch_order, iterations_per_epoch
from experiments.errors import InputError


class SampleDataset(Protocol):
    def __len__(self) -> int: ...

    def load(self, index: int, generator: torch.Generator | None) -> tuple[torch.Tensor, Any]:
        """One sample (x [...], y); generator None = the deterministic evaluation transform."""
        ...


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The random stream of one training draw: a function of (seed, epoch, index) only."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 10_000_019 + index) % (2**63))


@dataclass(frozen=True)
class BadSample:
    reason: str  # names the file


@dataclass
class LoaderCfg:
    """How a streaming source reads: DataLoader workers and their buffers, and what to do with unreadable files."""

    num_workers: int = 0
    pin_memory: bool = True  # only where a GPU is present
    persistent_workers: bool = True  # only with workers
    prefetch_factor: int = 2  # batches per worker in flight (only with workers)
    eval_batch_size: int = 256
    skip_bad: bool = False  # unreadable samples: skipped and counted instead of an input error

    def loader_kwargs(self) -> dict:
        workers = self.num_workers > 0
        return dict(num_workers=self.num_workers, pin_memory=self.pin_memory and torch.cuda.is_available(),
                    persistent_workers=self.persistent_workers and workers,
                    prefetch_factor=self.prefetch_factor if workers else None)


class _Keyed(Dataset):
    """Reads sample `index` for key (epoch, index) (epoch None: evaluation); unreadable -> BadSample."""

    def __init__(self, dataset: SampleDataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int | None, int]):
        epoch, index = key
        generator = None if epoch is None else sample_generator(self.seed, epoch, index)
        try:
            return self.dataset.load(index, generator)
        except OSError as e:
            return BadSample(str(e))


def _collate(items: list) -> tuple[torch.Tensor | None, torch.Tensor | None, list[str]]:
    """(x [b, ...], y [b, ...], reasons of the unreadable samples left out)."""
    good = [s for s in items if not isinstance(s, BadSample)]
    bad = [s.reason for s in items if isinstance(s, BadSample)]
    if not good:
        return None, None, bad
    ys = [y for _, y in good]
    return torch.stack([x for x, _ in good]), torch.stack(ys) if torch.is_tensor(ys[0]) else torch.tensor(ys), bad


class _EpochBatches:
    """Batch sampler: this rank's keys of batches start..steps-1 of `epoch` (set both before each `iter`)."""

    def __init__(self, n: int, batch_size: int, seed: int, steps: int) -> None:
        self.n, self.batch_size, self.seed, self.steps = n, batch_size, seed, steps
        self.epoch, self.start = 0, 0

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = epoch_order(self.seed, self.epoch, self.n)
        for i in range(self.start, self.steps):
            idx = distributed.shard(order[i * self.batch_size : (i + 1) * self.batch_size])
            yield [(self.epoch, int(j)) for j in idx]

    def __len__(self) -> int:
        return self.steps - self.start


class _Counter:
    """Unreadable samples met so far: raise (naming the file) or count them (distinct reasons)."""

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad, self.seen = skip_bad, set()

    def check(self, bad: list[str]) -> None:
        if bad and not self.skip_bad:
            raise InputError(f"{bad[0]}; fix or remove the file, or set data.skip_bad=true to skip and count it")
        self.seen.update(bad)


class LoaderBatches:
    """`BatchSource` over a sample dataset through a DataLoader; batch order `epoch_order(seed, epoch, N)`."""

    def __init__(self, dataset: SampleDataset, batch_size: int, seed: int, cfg: LoaderCfg | None = None,
                 counter: _Counter | None = None) -> None:
        self.cfg = cfg or LoaderCfg()
        self.batch_size, self.seed = batch_size, seed
        self.steps_per_epoch = iterations_per_epoch(len(dataset), batch_size)
        self.counter = counter or _Counter(self.cfg.skip_bad)
        self.sampler = _EpochBatches(len(dataset), batch_size, seed, self.steps_per_epoch)
        self.loader = DataLoader(_Keyed(dataset, seed), batch_sampler=self.sampler, collate_fn=_collate,
                                 **self.cfg.loader_kwargs())

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.sampler.epoch, self.sampler.start = epoch, start
        for x, y, bad in self.loader:
            self.counter.check(bad)
            if x is not None:
                yield x, y


class _EvalKeys:
    def __init__(self, n: int, batch_size: int) -> None:
        self.n, self.batch_size = n, batch_size

    def __iter__(self):
        for i in range(0, self.n, self.batch_size):
            yield [(None, j) for j in range(i, min(self.n, i + self.batch_size))]

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)


def eval_loader(dataset: SampleDataset, cfg: LoaderCfg) -> DataLoader:
    """Every sample of `dataset` once, in index order, with the deterministic transform: (x, y, bad) batches."""
    return DataLoader(_Keyed(dataset, 0), batch_sampler=_EvalKeys(len(dataset), cfg.eval_batch_size),
                      collate_fn=_collate, **cfg.loader_kwargs())


class SampleView:
    """Lazy stand-in for a split's x (or y) tensor: `len`, `shape` and slicing decode on demand (deterministic
    transform), so code that asks for `x_train[:1]` or `len(x_val)` works on a streaming split."""

    def __init__(self, dataset: SampleDataset, part: int) -> None:
        self.dataset, self.part = dataset, part

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        if isinstance(key, int):
            return torch.as_tensor(self.dataset.load(key, None)[self.part])
        return torch.stack([torch.as_tensor(self.dataset.load(i, None)[self.part])
                            for i in range(*key.indices(len(self)))])

    @property
    def shape(self) -> torch.Size:
        return torch.Size([len(self), *self[0].shape])


@dataclass
class StreamingSplits:
    """train/val/test sample datasets read through loaders; the trainer asks `train_batches` for its batches and
    `eval_batches(split)` for evaluation. x_*/y_* are `SampleView`s. `skipped`: unreadable samples left out."""

    train: Any
    val: Any
    test: Any
    loader: LoaderCfg = field(default_factory=LoaderCfg)
    num_classes: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._counter = _Counter(self.loader.skip_bad)
        self._eval: dict[str, DataLoader] = {}
        self._move: Callable | None = None
        for split in ("train", "val", "test"):
            ds = getattr(self, split)
            setattr(self, f"x_{split}", SampleView(ds, 0))
            setattr(self, f"y_{split}", SampleView(ds, 1))

    @property
    def in_features(self) -> int:
        return int(torch.tensor(self.x_train.shape[1:]).prod())

    @property
    def skipped(self) -> int:
        return len(self._counter.seen)

    def train_batches(self, batch_size: int, seed: int) -> LoaderBatches:
        return LoaderBatches(self.train, batch_size, seed, self.loader, self._counter)

    def eval_batches(self, split: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if split not in self._eval:  # one loader per split, kept (persistent workers)
            self._eval[split] = eval_loader(getattr(self, split), self.loader)
        for x, y, bad in self._eval[split]:
            self._counter.check(bad)
            if x is not None:
                yield self._move((x, y)) if self._move is not None else (x, y)

    def on_device(self, move: Callable) -> StreamingSplits:
        """A view of these splits whose evaluation batches go through `move` (the trainer's device transfer)."""
        view = copy.copy(self)
        view._move = move
        return view

    def overfit(self) -> StreamingSplits:
        """debug.overfit: validation and test are the training set (read with the evaluation transform)."""
        return dataclasses.replace(self, val=self.train, test=self.train)


def batch_source(data, batch_size: int, seed: int):
    """The default training source of `data`: its own streaming source, or tensors in memory."""
    if hasattr(data, "train_batches"):
        return data.train_batches(batch_size, seed)
    return TensorBatches(data.x_train, data.y_train, batch_size, seed)


IN_MEMORY = ("auto", "true", "false")


def keep_in_memory(mode: str, decoded_bytes: int, budget_gb: float) -> bool:
    """data.in_memory: true/false, or auto = the decoded set fits data.memory_budget_gb."""
    mode = str(mode).lower()
    if mode not in IN_MEMORY:
        raise ValueError(f"data.in_memory={mode!r}: allowed {', '.join(IN_MEMORY)}")
    return mode == "true" or (mode == "auto" and decoded_bytes <= budget_gb * 2**30)
