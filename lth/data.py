"""Datasets for lottery-ticket runs, held in memory as tensors (small-data runs index batches directly;
per-sample PIL transforms are 5x slower on these machines, see FIELD-NOTES).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lth.registry import Registry

DATASETS: Registry = Registry("lth dataset")


@dataclass
class Splits:
    """x_*: [N, ...] float32, y_*: [N] int64. The validation split is carved from the training set."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def in_features(self) -> int:
        return int(np.prod(self.x_train.shape[1:]))


def carve_validation(x: torch.Tensor, y: torch.Tensor, fraction: float, seed: int):
    """Split (x, y) into train/val with a seeded permutation; returns x_tr, y_tr, x_val, y_val."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in [0, 1), got {fraction}")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(fraction * len(x)))
    val, train = perm[:n_val], perm[n_val:]
    return x[train], y[train], x[val], y[val]


@DATASETS.register("mnist1d")
def mnist1d(num_samples: int = 5000, train_split: float = 0.8, val_fraction: float = 0.1, seed: int = 42,
            split_seed: int = 0, **generator_args) -> Splits:
    """MNIST-1D generated offline with `mnist1d.data.make_dataset` (never `get_dataset`, which downloads).

    num_samples=5000, train_split=0.8 gives the standard 4000/1000 train/test; `generator_args` override any other
    field of `mnist1d.data.get_dataset_args()` (e.g. noise scales for a transfer variant).
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args(as_dict=True)
    unknown = set(generator_args) - set(args)
    if unknown:
        raise ValueError(f"unknown MNIST-1D generator args {sorted(unknown)}; allowed: {sorted(args)}")
    args.update(generator_args, num_samples=num_samples, train_split=train_split, seed=seed)
    d = make_dataset(_View(args))
    x = torch.as_tensor(d["x"], dtype=torch.float32)
    y = torch.as_tensor(d["y"], dtype=torch.int64)
    x_tr, y_tr, x_val, y_val = carve_validation(x, y, val_fraction, split_seed)
    return Splits(x_tr, y_tr, x_val, y_val, torch.as_tensor(d["x_test"], dtype=torch.float32),
                  torch.as_tensor(d["y_test"], dtype=torch.int64), num_classes=10)


class _View:
    """Attribute access over a dict, as `make_dataset` expects."""

    def __init__(self, d: dict) -> None:
        self.__dict__.update(d)


def load_dataset(name: str, **kwargs) -> Splits:
    return DATASETS.get(name)(**kwargs)


# Image readers (mnist, fashion_mnist, cifar10, mnist5k) register themselves on import.
from lth import image_data  # noqa: E402, F401
