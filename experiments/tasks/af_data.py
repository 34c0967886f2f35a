"""Video data of the adaptive-frames task, built by `data.name` from `AF_DATA`: the synthetic needle videos or a
list of real videos (frame folders or video files), held in memory as clips, or streamed (`data.in_memory`: each
clip decoded when drawn, af_stream)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from adaptive_frames import mean_average_precision
from adaptive_frames.data.frames import FrameFolderDataset
from adaptive_frames.data.needle import NeedleConfig, make_needle_splits
from adaptive_frames.data.video import VideoFileDataset
from adaptive_frames.metrics import accuracy
from experiments.errors import InputError
from experiments.schema import ConfigError
from experiments.streaming import SampleView, StreamingSplits, keep_in_memory
from experiments.tasks.af_stream import video_stream
from meter.registry import Registry

AF_DATA: Registry = Registry("adaptive_frames dataset")


@dataclasses.dataclass
class VideoData:
    """clips [N, T, C, H, W] float32; labels [N] int64 or multi-hot [N, K]; informative [N, T] bool or None.
    Streaming (`stream` set): clips and labels are `SampleView`s (decoded on demand); batches come from `stream`."""

    train_clips: torch.Tensor
    train_labels: torch.Tensor
    test_clips: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    channels: int
    multilabel: bool = False
    test_informative: torch.Tensor | None = None  # ground truth needles (the oracle baseline), synthetic data only
    stream: StreamingSplits | None = None

    @property
    def num_frames(self) -> int:
        return self.train_clips.shape[1]

    def overfit(self) -> VideoData:
        """debug.overfit: the test set is the training set (a stream reads it centre-sampled)."""
        stream = None if self.stream is None else self.stream.overfit()
        return dataclasses.replace(self, test_clips=self.train_clips, test_labels=self.train_labels,
                                   test_informative=None, stream=stream)

    def loss_and_metric(self):
        """(loss_fn, metric): BCE and mAP for multi-hot labels, cross-entropy and accuracy otherwise."""
        if self.multilabel:
            return F.binary_cross_entropy_with_logits, mean_average_precision
        return F.cross_entropy, accuracy


def video_list_names() -> list[str]:
    """The `data.name`s that read a video list (the `base_video_list` schema)."""
    return [n for n in AF_DATA.names() if getattr(AF_DATA.get(n), "reads_video_list", False)]


def _video_list_reader(fn):
    fn.reads_video_list = True
    return fn


@AF_DATA.register("needle")
def needle(cfg) -> VideoData:
    fields = {f.name: getattr(cfg.data, f.name) for f in dataclasses.fields(NeedleConfig)}
    fields["seed"] = cfg.seed if cfg.data.seed is None else cfg.data.seed
    ncfg = NeedleConfig(**fields)
    train, test = make_needle_splits(ncfg)
    return VideoData(train.clips, train.labels, test.clips, test.labels, ncfg.num_classes, ncfg.channels,
                     test_informative=test.informative)


def _materialise(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        items = [dataset[i] for i in range(len(dataset))]
    except OSError as e:  # a missing or undecodable video, named
        raise InputError(str(e)) from None
    if not items:
        raise ValueError(f"{type(dataset).__name__}: the list file names no video")
    return torch.stack([c for c, _, _ in items]), torch.stack([y for _, y, _ in items])


def _video_list(cfg, dataset_cls, **extra) -> VideoData:
    d = cfg.data
    for key in ("root", "train_list", "test_list"):
        if not Path(getattr(d, key)).exists():
            raise ConfigError(f"data.{key}={getattr(d, key)!r} does not exist")
    kwargs = dict(num_segments=d.num_segments, size=d.size, num_classes=d.num_classes if d.multilabel else None,
                  seed=cfg.seed, **extra)
    try:
        train_set = dataset_cls(d.root, d.train_list, train=True, **kwargs)
        test_set = dataset_cls(d.root, d.test_list, train=False, **kwargs)
    except ValueError as e:  # a malformed list file, named with its line
        raise InputError(str(e)) from None
    decoded = (len(train_set) + len(test_set)) * d.num_segments * d.channels * d.size**2 * 4  # float32 clips
    if not keep_in_memory(d.in_memory, decoded, d.memory_budget_gb):
        stream = video_stream(cfg, train_set, test_set)
        return VideoData(SampleView(train_set, 0), SampleView(train_set, 1), SampleView(test_set, 0),
                         SampleView(test_set, 1), num_classes=d.num_classes, channels=d.channels,
                         multilabel=d.multilabel, stream=stream)
    train = _materialise(train_set)
    test = _materialise(test_set)
    if train[0].shape[2] != d.channels:
        raise ValueError(f"data.channels={d.channels} but the decoded frames have {train[0].shape[2]} channels")
    return VideoData(*train, *test, num_classes=d.num_classes, channels=d.channels, multilabel=d.multilabel)


@AF_DATA.register("frame_folders")
@_video_list_reader
def frame_folders(cfg) -> VideoData:
    mode = "RGB" if cfg.data.channels == 3 else "L"
    return _video_list(cfg, FrameFolderDataset, template=cfg.data.template, index_base=cfg.data.index_base, mode=mode)


@AF_DATA.register("video_files")
@_video_list_reader
def video_files(cfg) -> VideoData:
    if cfg.data.channels != 3:
        raise ConfigError("data.channels must be 3 for data.name=video_files (PyAV decodes RGB)")
    return _video_list(cfg, VideoFileDataset)
