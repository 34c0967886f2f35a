"""ImageFolder trees read one image at a time (for sets that do not fit in memory), with the standard transforms.

`ImageFiles(folder, transform)` is a sample dataset: `load(i, generator)` decodes file i with torchvision's
decoder and applies `transform`; `generator` drives the random part (None: the evaluation transform). Files and
classes follow torchvision's `ImageFolder` (sorted class folders, its image extensions).

Presets (`ImageTransform.preset`):
  imagenet  train: RandomResizedCrop(size, scale (0.08, 1), ratio (3/4, 4/3)) + horizontal flip;
            eval: resize the short side to `resize` (default size / 0.875) + centre crop `size`
  cifar     train: zero-pad 4 + random crop `size` + horizontal flip; eval: the image as it is
  none      no randomness; optional resize to [H, W] (`resize_hw`)
then pixels to [0, 1] and optional per-channel (x - mean) / std.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PRESETS = ("none", "imagenet", "cifar")


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def random_resized_crop_box(h: int, w: int, g: torch.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """(top, left, height, width) as torchvision's RandomResizedCrop.get_params, drawn from `g`."""
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * _uniform(g, *scale)
        aspect = math.exp(_uniform(g, *log_ratio))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (), generator=g))
            left = int(torch.randint(0, w - cw + 1, (), generator=g))
            return top, left, ch, cw
    in_ratio = w / h  # fallback: the central crop of the allowed aspect ratios
    if in_ratio < ratio[0]:
        cw, ch = w, round(w / ratio[0])
    elif in_ratio > ratio[1]:
        ch, cw = h, round(h * ratio[1])
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


@dataclass
class ImageTransform:
    """uint8 [C, H, W] -> float32 [C, h, w] (see the module docstring for the presets)."""

    preset: str = "none"
    size: int | None = None  # output side (imagenet, cifar)
    resize: int | None = None  # imagenet eval: short side before the centre crop
    resize_hw: tuple[int, int] | None = None  # none: [H, W]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"data.transform={self.preset!r}: allowed {', '.join(PRESETS)}")
        if self.preset != "none" and not self.size:
            raise ValueError(f"data.transform={self.preset} needs data.crop_size (the output side)")

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        """The output height and width for an input of h x w."""
        if self.preset == "none":
            return tuple(self.resize_hw) if self.resize_hw else (h, w)
        return (self.size, self.size) if self.preset == "imagenet" else (h, w)

    def __call__(self, img: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        import torchvision.transforms.v2.functional as F

        if self.preset == "imagenet" and g is not None:
            img = F.resized_crop(img, *random_resized_crop_box(img.shape[-2], img.shape[-1], g),
                                 [self.size, self.size], antialias=True)
        elif self.preset == "imagenet":
            img = F.center_crop(F.resize(img, [self.resize or round(self.size / 0.875)], antialias=True),
                                [self.size, self.size])
        elif self.preset == "cifar" and g is not None:
            img = F.pad(img, [4])
            top = int(torch.randint(0, img.shape[-2] - self.size + 1, (), generator=g))
            left = int(torch.randint(0, img.shape[-1] - self.size + 1, (), generator=g))
            img = F.crop(img, top, left, self.size, self.size)
        elif self.preset == "none" and self.resize_hw:
            img = F.resize(img, list(self.resize_hw), antialias=True)
        if self.preset != "none" and g is not None and float(torch.rand((), generator=g)) < 0.5:
            img = img.flip(-1)
        x = img.float() / 255.0
        if self.mean is not None:
            x = (x - torch.tensor(self.mean).view(-1, 1, 1)) / torch.tensor(self.std).view(-1, 1, 1)
        return x


def image_files(folder: Path, classes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(paths [N] str, targets [N] int64, classes) of an ImageFolder tree; FileNotFoundError names a missing
    folder or an empty class folder; ValueError when `classes` (train's) differ."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    found, index = find_classes(str(folder))
    if classes is not None and found != classes:
        raise ValueError(f"{folder} has classes {found}, but train/ has {classes}; the splits must match")
    try:
        pairs = make_dataset(str(folder), index, extensions=IMG_EXTENSIONS)
    except FileNotFoundError:  # a class folder without images: name it
        counts = {c: 0 for c in found}
        for _, t in make_dataset(str(folder), index, extensions=IMG_EXTENSIONS, allow_empty=True):
            counts[found[t]] += 1
        empty = [str(folder / c) for c, k in counts.items() if k == 0]
        raise FileNotFoundError(f"empty class folder {', '.join(empty)}: no image file "
                                f"({', '.join(IMG_EXTENSIONS)})") from None
    return np.array([p for p, _ in pairs]), np.array([t for _, t in pairs], dtype=np.int64), found


class ImageFiles:
    """Sample dataset over image files: load(i, generator) -> (x float32 [C, h, w], class id).

    Paths live in one numpy array (not a list of str objects) so forked DataLoader workers do not copy them page
    by page as reference counts change."""

    def __init__(self, paths: np.ndarray, targets: np.ndarray, transform: ImageTransform, grayscale: bool = False):
        self.paths, self.targets, self.transform, self.grayscale = paths, targets, transform, grayscale

    def __len__(self) -> int:
        return len(self.paths)

    def decode(self, i: int) -> torch.Tensor:
        """uint8 [C, H, W] of file i; OSError naming the file when it cannot be read or decoded."""
        from torchvision.io import ImageReadMode, decode_image, read_file

        path = str(self.paths[i])
        try:
            return decode_image(read_file(path), mode=ImageReadMode.GRAY if self.grayscale else ImageReadMode.RGB)
        except (RuntimeError, ValueError, OSError) as e:
            raise OSError(f"unreadable image {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") \
                from None

    def load(self, i: int, generator: torch.Generator | None) -> tuple[torch.Tensor, int]:
        return self.transform(self.decode(i), generator), int(self.targets[i])

    def subset(self, idx: np.ndarray) -> ImageFiles:
        return ImageFiles(self.paths[idx], self.targets[idx], self.transform, self.grayscale)
