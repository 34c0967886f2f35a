"""Data configs that can stream: the loader options every streaming data config shares, and the builders that turn a
data config into `StreamingSplits` (or None: the task loads it into memory as before).

`data.in_memory`: true = tensors (the fastest loader where the decoded set fits), false = stream through a
`DataLoader`, auto = tensors when the decoded set fits `data.memory_budget_gb`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from experiments.errors import InputError
from experiments.schema import check as _check
from experiments.streaming import IN_MEMORY, LoaderCfg, StreamingSplits, keep_in_memory
from meter.registry import Registry

STREAMS: Registry = Registry("streaming dataset")  # data name -> builder(cfg) -> StreamingSplits | None


@dataclass
class StreamingDataCfg:
    """Loader options of a data config that can stream (see `experiments.streaming.LoaderCfg`)."""

    in_memory: str = "auto"  # auto | true | false
    memory_budget_gb: float = 4.0  # auto: tensors when the decoded set is at most this
    num_workers: int = 0
    pin_memory: bool = True  # only where a GPU is present
    persistent_workers: bool = True
    prefetch_factor: int = 2
    eval_batch_size: int = 256
    skip_bad: bool = False  # an unreadable file: skipped and counted in the row (data/skipped_bad), not an error

    def check_streaming(self) -> None:
        self.in_memory = str(self.in_memory).lower()  # `data.in_memory=true` arrives as the bool's text
        _check(self.in_memory in IN_MEMORY, "data.in_memory", self.in_memory, ", ".join(IN_MEMORY))
        _check(self.memory_budget_gb >= 0, "data.memory_budget_gb", self.memory_budget_gb, ">= 0")
        _check(self.num_workers >= 0, "data.num_workers", self.num_workers, ">= 0")
        _check(self.prefetch_factor >= 1, "data.prefetch_factor", self.prefetch_factor, ">= 1")
        _check(self.eval_batch_size >= 1, "data.eval_batch_size", self.eval_batch_size, ">= 1")

    def loader_cfg(self) -> LoaderCfg:
        return LoaderCfg(num_workers=self.num_workers, pin_memory=self.pin_memory,
                         persistent_workers=self.persistent_workers, prefetch_factor=self.prefetch_factor,
                         eval_batch_size=self.eval_batch_size, skip_bad=self.skip_bad)


def load_streaming(cfg) -> StreamingSplits | None:
    """The streaming splits of `cfg.data`, or None where the data stays in memory (or cannot stream)."""
    if cfg.data.name not in STREAMS:
        return None
    return STREAMS.get(cfg.data.name)(cfg)


def skipped_row(data) -> dict:
    """The row's count of unreadable samples skipped (streaming data with data.skip_bad only)."""
    return {"data/skipped_bad": data.skipped} if isinstance(data, StreamingSplits) and data.loader.skip_bad else {}


@STREAMS.register("image_folder")
def image_folder(cfg) -> StreamingSplits | None:
    """<root>/{train,val?,test}/<class>/<image> read one image at a time; None when in memory is chosen."""
    from lth.image_stream import ImageFiles, ImageTransform, image_files

    d, root = cfg.data, Path(cfg.data.root)
    transform = ImageTransform(d.transform, d.crop_size, d.eval_resize, tuple(d.resize) if d.resize else None,
                               tuple(d.mean) if d.mean else None, tuple(d.std) if d.std else None)

    def files(split: str, classes=None):
        try:
            paths, targets, found = image_files(root / split, classes)
        except (FileNotFoundError, ValueError) as e:
            raise InputError(f"data.root={str(root)!r}: {e}") from None
        return ImageFiles(paths, targets, transform, d.grayscale), found

    train, classes = files("train")
    test, _ = files("test", classes)
    val = files("val", classes)[0] if (root / "val").is_dir() else None
    c, h, w = train.decode(0).shape  # the decoded size, from the first image
    oh, ow = transform.out_hw(h, w)
    n = len(train) + len(test) + (len(val) if val is not None else 0)
    if d.transform == "none" and keep_in_memory(d.in_memory, n * c * oh * ow * 4, d.memory_budget_gb):
        return None
    if val is None:  # carved from train as lth.splits.carve_validation does for the in-memory path
        perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(d.split_seed)).numpy()
        n_val = int(round(d.val_fraction * len(train)))
        train, val = train.subset(perm[n_val:]), train.subset(perm[:n_val])  # in that order, like the tensors
    return StreamingSplits(train, val, test, d.loader_cfg(), num_classes=len(classes))
