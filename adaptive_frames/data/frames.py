"""Frame folders with list files (the AR-Net / TSN / AdaFocus layout).

List file: one video per line, `path,num_frames,label[,label...]` (comma-separated; whitespace-separated also
accepted), `path` relative to `root`; frames are `root/path/{:05d}.jpg`, numbered from `index_base` (1 in TSN).
Items are (clip [num_segments, C, size, size] float in [0, 1], label, index); label is an int64 scalar, or a
multi-hot float [num_classes] when `num_classes` is given (multi-label, for mAP).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from .sampling import tsn_indices


@dataclass(frozen=True)
class VideoEntry:
    path: str
    num_frames: int
    labels: tuple[int, ...]


def parse_list_file(path: str | Path) -> list[VideoEntry]:
    entries = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in (line.split(",") if "," in line else line.split())]
        try:
            if len(parts) < 3:
                raise ValueError("too few fields")
            entries.append(VideoEntry(parts[0], int(parts[1]), tuple(int(x) for x in parts[2:])))
        except ValueError as e:
            raise ValueError(f"{path}:{lineno}: {line!r} is not 'path,num_frames,label[,label...]' ({e})") from None
    if not entries:
        raise ValueError(f"{path}: list file has no entries")
    return entries


def make_label(labels: tuple[int, ...], num_classes: int | None) -> torch.Tensor:
    if num_classes is None:
        if len(labels) != 1:
            raise ValueError(f"labels {labels}: several labels need num_classes (multi-label)")
        return torch.tensor(labels[0], dtype=torch.long)
    if any(not 0 <= y < num_classes for y in labels):
        raise ValueError(f"labels {labels} out of range [0, {num_classes})")
    out = torch.zeros(num_classes)
    out[list(labels)] = 1.0
    return out


def to_clip(frames: torch.Tensor, size: int | None) -> torch.Tensor:
    """uint8 [T, C, H, W] -> float [T, C, size, size] in [0, 1]."""
    x = frames.float() / 255.0
    return x if size is None else F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _read(path: Path, mode: str) -> np.ndarray:
    """Image file -> uint8 [C, H, W] (PIL decodes; torchvision's image IO is deprecated as of 0.29)."""
    with Image.open(path) as im:
        a = np.asarray(im.convert(mode))
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


class FrameFolderDataset(Dataset):
    def __init__(
        self, root: str | Path, list_file: str | Path, num_segments: int, train: bool, size: int | None = None,
        num_classes: int | None = None, template: str = "{:05d}.jpg", index_base: int = 1, seed: int = 0,
        mode: str = "RGB",
    ) -> None:
        self.root, self.entries = Path(root), parse_list_file(list_file)
        self.num_segments, self.train, self.size, self.num_classes = num_segments, train, size, num_classes
        self.template, self.index_base, self.mode = template, index_base, mode
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(clip, label, i), sampled as `train` says from the dataset's own generator (in-memory use)."""
        return self._clip(i, self.train, self.generator), make_label(self.entries[i].labels, self.num_classes), i

    def load(self, i: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Streaming sample: (clip [T, C, size, size], label); TSN random offsets drawn from `generator`, or the
        segment centres when it is None (evaluation). OSError names the video and file it could not read."""
        return self._clip(i, generator is not None, generator), make_label(self.entries[i].labels, self.num_classes)

    def _clip(self, i: int, train: bool, generator: torch.Generator | None) -> torch.Tensor:
        e = self.entries[i]
        idx = tsn_indices(e.num_frames, self.num_segments, train, generator)
        files = [self.root / e.path / self.template.format(int(j) + self.index_base) for j in idx]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"video {e.path!r}: missing frame files {missing[:3]}")
        try:
            frames = torch.from_numpy(np.stack([_read(f, self.mode) for f in files]))
        except OSError as err:  # PIL: unidentified or truncated image
            raise OSError(f"video {e.path!r}: unreadable frame file ({err})") from None
        return to_clip(frames, self.size)
