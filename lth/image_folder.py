"""`image_folder`: any torchvision `ImageFolder` tree, decoded once and held in memory as `Splits`.

    <root>/train/<class>/*.png    required
    <root>/val/<class>/*.png      optional; when absent, `val_fraction` of train is carved out (seeded)
    <root>/test/<class>/*.png     required

Every image goes through the same transforms once (optional grayscale, optional resize to [H, W], to float in
[0, 1], optional per-channel normalisation); the trainer then indexes batches from tensors (see FIELD-NOTES: per-
sample PIL transforms at every step are 5x slower). Class indices are the sorted subfolder names of train/, and
val/ and test/ must hold the same classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from lth.splits import DATASETS, Splits, carve_validation


class CorruptImageError(ValueError):
    """An image file under data.root that cannot be decoded (truncated, not an image); `path` names it."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"data.root: cannot decode the image {path} ({problem}); repair or remove it")
        self.path = path


def _rgb(image):
    return image.convert("RGB")


def _transform(resize: Sequence[int] | None, mean: Sequence[float] | None, std: Sequence[float] | None,
               grayscale: bool):
    from torchvision import transforms as T

    steps = [T.Grayscale()] if grayscale else [T.Lambda(_rgb)]
    if resize is not None:
        steps.append(T.Resize(list(resize)))
    steps.append(T.ToTensor())
    if mean is not None or std is not None:
        if mean is None or std is None:
            raise ValueError(f"data.mean={mean} and data.std={std}: give both or neither")
        steps.append(T.Normalize(list(mean), list(std)))
    return T.Compose(steps)


def _read(folder: Path, transform, classes: list[str] | None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """x: [N, C, H, W] float32, y: [N] int64 of one split folder."""
    from torchvision.datasets import ImageFolder

    try:
        ds = ImageFolder(str(folder), transform=transform)
    except (FileNotFoundError, OSError) as e:
        raise FileNotFoundError(f"data.root: cannot read the image folder {folder}: {e}") from None
    if classes is not None and ds.classes != classes:
        raise ValueError(f"{folder} has classes {ds.classes}, but train/ has {classes}; the splits must match")
    pairs = []
    for i in range(len(ds)):
        try:
            pairs.append(ds[i])
        except OSError as e:  # PIL: UnidentifiedImageError, "image file is truncated"
            raise CorruptImageError(ds.samples[i][0], str(e)) from None
    shapes = {tuple(x.shape) for x, _ in pairs}
    if len(shapes) > 1:
        raise ValueError(f"{folder}: images of different sizes {sorted(shapes)[:4]}; set data.resize=[H, W]")
    return torch.stack([x for x, _ in pairs]), torch.tensor([y for _, y in pairs], dtype=torch.int64), ds.classes


@DATASETS.register("image_folder")
def image_folder(root: str, resize: Sequence[int] | None = None, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, grayscale: bool = False, val_fraction: float = 0.1,
                 split_seed: int = 0) -> Splits:
    root_path = Path(root)
    transform = _transform(resize, mean, std, grayscale)
    x_tr, y_tr, classes = _read(root_path / "train", transform, None)
    if (root_path / "val").is_dir():
        x_val, y_val, _ = _read(root_path / "val", transform, classes)
    else:
        x_tr, y_tr, x_val, y_val = carve_validation(x_tr, y_tr, val_fraction, split_seed)
    x_te, y_te, _ = _read(root_path / "test", transform, classes)
    return Splits(x_tr, y_tr, x_val, y_val, x_te, y_te, num_classes=len(classes))
