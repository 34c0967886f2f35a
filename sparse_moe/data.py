"""In-memory data for MoE experiments: seeded clustered regression and char-level text.

Nothing downloads. The default char corpus is built from Python standard-library source files present on
every machine; which files and their sha256 are recorded in `CharCorpus.sources`.
"""

from __future__ import annotations

import hashlib
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass
class ClusteredRegressionConfig:
    """K Gaussian clusters in R^dim; cluster c has its own random 2-layer tanh teacher."""

    num_clusters: int = 16
    dim: int = 32
    out_dim: int = 4
    teacher_hidden: int = 32
    center_std: float = 3.0  # spread of cluster centres
    cluster_std: float = 1.0  # spread of points around their centre
    noise_std: float = 0.0  # label noise
    n_train: int = 16384
    n_test: int = 4096
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("num_clusters", "dim", "out_dim", "teacher_hidden", "n_train", "n_test"):
            if getattr(self, key) < 1:
                raise ValueError(f"data.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("center_std", "cluster_std", "noise_std"):
            if getattr(self, key) < 0:
                raise ValueError(f"data.{key} must be >= 0, got {getattr(self, key)}")


@dataclass
class RegressionSplits:
    """x [n, dim] fp32, y [n, out_dim] fp32, cluster [n] long, for train and test."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    cluster_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    cluster_test: torch.Tensor


def make_clustered_regression(cfg: ClusteredRegressionConfig) -> RegressionSplits:
    """Deterministic for a given cfg (own torch.Generator); targets scaled to unit variance on train."""
    g = torch.Generator().manual_seed(cfg.seed)
    k, d, h, o = cfg.num_clusters, cfg.dim, cfg.teacher_hidden, cfg.out_dim
    centers = torch.randn(k, d, generator=g) * cfg.center_std
    w1 = torch.randn(k, d, h, generator=g) / d**0.5
    b1 = torch.randn(k, h, generator=g) * 0.5
    w2 = torch.randn(k, h, o, generator=g) / h**0.5

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = torch.randint(0, k, (n,), generator=g)
        x = centers[c] + torch.randn(n, d, generator=g) * cfg.cluster_std
        # Teachers see the offset from their centre so each cluster's function differs in shape, not only bias.
        hid = torch.tanh(torch.einsum("nd,ndh->nh", (x - centers[c]), w1[c]) + b1[c])
        y = torch.einsum("nh,nho->no", hid, w2[c])
        return x, y, c

    x_tr, y_tr, c_tr = sample(cfg.n_train)
    x_te, y_te, c_te = sample(cfg.n_test)
    mean, std = y_tr.mean(0), y_tr.std(0).clamp_min(1e-8)
    y_tr, y_te = (y_tr - mean) / std, (y_te - mean) / std
    if cfg.noise_std > 0:
        y_tr = y_tr + torch.randn(y_tr.shape, generator=g) * cfg.noise_std
    return RegressionSplits(x_tr, y_tr, c_tr, x_te, y_te, c_te)


# Present in CPython 3.10-3.13 source trees; missing ones are skipped and the used list is recorded.
STDLIB_FILES = (
    "argparse.py", "dataclasses.py", "difflib.py", "functools.py", "inspect.py", "os.py", "random.py",
    "textwrap.py", "typing.py", "collections/__init__.py", "json/decoder.py", "json/encoder.py",
)


@dataclass
class CharCorpus:
    """Char-level corpus. `data` [n] long ids; `train`/`val` are its first (1 - val_fraction) / last parts.
    `sources`: (file, sha256) of what was read."""

    vocab: list[str]
    data: torch.Tensor
    val_fraction: float
    sources: list[tuple[str, str]] = field(default_factory=list)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def split_at(self) -> int:
        return int(len(self.data) * (1 - self.val_fraction))

    def split(self, name: str) -> torch.Tensor:
        if name not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {name!r}")
        return self.data[: self.split_at] if name == "train" else self.data[self.split_at :]

    def get_batch(
        self, name: str, batch_size: int, block_size: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows: x [B, S] ids, y [B, S] next-char ids."""
        data = self.split(name)
        if len(data) <= block_size:
            raise ValueError(f"{name} split has {len(data)} chars, needs more than block_size={block_size}")
        start = torch.randint(0, len(data) - block_size, (batch_size,), generator=generator)
        offs = torch.arange(block_size)
        return data[start[:, None] + offs], data[start[:, None] + offs + 1]

    def decode(self, ids: torch.Tensor) -> str:
        return "".join(self.vocab[i] for i in ids.tolist())


def _sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def stdlib_text() -> tuple[str, list[tuple[str, str]]]:
    """Concatenated standard-library sources and their (relative path, sha256) list."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, sources = [], []
    for rel in STDLIB_FILES:
        p = root / rel
        if p.is_file():
            raw = p.read_bytes()
            parts.append(raw.decode("utf-8"))
            sources.append((f"python{sys.version_info.major}.{sys.version_info.minor}/{rel}", _sha256(raw)))
    if not parts:
        raise FileNotFoundError(f"none of {STDLIB_FILES} found under the standard library at {root}")
    return "\n".join(parts), sources


def load_char_corpus(path: str | None = None, val_fraction: float = 0.1) -> CharCorpus:
    """Read `path` (UTF-8 text) or, when None, the standard-library default corpus."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if path is None:
        text, sources = stdlib_text()
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"data.path {path!r} is not a file")
        raw = p.read_bytes()
        text, sources = raw.decode("utf-8"), [(str(p), _sha256(raw))]
    vocab = sorted(set(text))
    index = {ch: i for i, ch in enumerate(vocab)}
    data = torch.tensor([index[ch] for ch in text], dtype=torch.long)
    return CharCorpus(vocab, data, val_fraction, sources)
