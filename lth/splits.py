"""The dataset registry and the type every dataset returns: `DATASETS`, `Splits`, `carve_validation`.

Dataset modules (lth/data.py, lth/image_data.py, lth/image_folder.py) register into `DATASETS`; `lth/__init__.py`
imports them all. Datasets are held in memory as tensors (small-data runs index batches directly; per-sample PIL
transforms are 5x slower on these machines, see FIELD-NOTES).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from meter.registry import Registry

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



def load_dataset(name: str, **kwargs) -> Splits:
    return DATASETS.get(name)(**kwargs)
