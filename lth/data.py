"""MNIST-1D, generated offline, as `Splits` (the registry and `Splits` live in lth/splits.py, re-exported here)."""

from __future__ import annotations

import torch

from lth.splits import DATASETS, Splits, carve_validation, load_dataset

__all__ = ["DATASETS", "Splits", "carve_validation", "load_dataset", "mnist1d"]


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
