"""Streaming video for the adaptive-frames task (`data.in_memory=false`, or auto over budget): each clip is decoded
when it is drawn, through `experiments.streaming` (DataLoader workers, order a function of (seed, epoch), TSN offsets
a function of (seed, epoch, index), so 0 or N workers give the same batches and resume replays them).

The AF stages iterate loaders of (clips [B, T, C, H, W], labels [B] or [B, K], index [B] or None);
`train_loader`/`test_loader` give them `ClipLoader` over tensors in memory (unchanged) or the streaming adapters
here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch

from adaptive_frames.data.loader import ClipLoader
from experiments import distributed
from experiments.errors import InputError
from experiments.streaming import LoaderBatches, StreamingSplits

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


class EpochClips:
    """ClipLoader's interface over a streaming source: set `passes` to the epoch, iterate (clips, labels, None).
    Batches are full (drop_last), so a stage sees `steps_per_epoch * batch_size` clips per epoch."""

    def __init__(self, source: LoaderBatches) -> None:
        self.source, self.passes = source, 0

    def __len__(self) -> int:
        return self.source.steps_per_epoch

    def __iter__(self) -> Iterator[Batch]:
        for x, y in self.source.epoch(self.passes):
            yield x, y, None  # no index: nothing is cached per clip when clips change every epoch


class OrderedClips:
    """Every clip of a split once, in list order, centre-sampled: (clips, labels, index [b]); re-iterable."""

    def __init__(self, splits: StreamingSplits, split: str) -> None:
        self.splits, self.split = splits, split

    def __iter__(self) -> Iterator[Batch]:
        start = 0
        for x, y in self.splits.eval_batches(self.split):
            yield x, y, torch.arange(start, start + len(x))
            start += len(x)


def train_loader(data, batch_size: int, seed: int):
    """Training batches of `data` (af_data.VideoData): tensors in memory, or its stream."""
    if data.stream is None:  # under torch.distributed: this rank's shard of every global batch
        rank, size = distributed.world()
        return ClipLoader(data.train_clips, data.train_labels, batch_size, shuffle=True, seed=seed, rank=rank,
                          world_size=size)
    return EpochClips(data.stream.train_batches(batch_size, seed))


def test_loader(data, batch_size: int):
    """The test clips of `data` in order (the stream's batch size is fixed when it is built)."""
    if data.stream is None:
        return ClipLoader(data.test_clips, data.test_labels, batch_size, shuffle=False)
    return OrderedClips(data.stream, "test")


def video_stream(cfg, train, test) -> StreamingSplits:
    """Streaming splits over two list datasets (`load(i, generator)`); the first clip is decoded to check it."""
    d = cfg.data
    try:
        channels = train.load(0, None)[0].shape[1]
    except OSError as e:
        raise InputError(str(e)) from None
    if channels != d.channels:
        raise InputError(f"data.channels={d.channels} but the decoded frames have {channels} channels")
    loader = dataclasses.replace(d.loader_cfg(), eval_batch_size=cfg.method.eval_batch_size)
    return StreamingSplits(train, test, test, loader, num_classes=d.num_classes)
