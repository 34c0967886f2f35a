"""Token corpora in nanoGPT's on-disk format: `train.bin` / `val.bin` raw uint16 token ids, read with `np.memmap`.

    <dir>/train.bin   uint16 [n_train]
    <dir>/val.bin     uint16 [n_val]
    <dir>/meta.json   {"tokenizer": ..., "vocab_size": ...}  (written by `python -m sparse_moe.prepare`)

Training draws random windows of block + 1 tokens without loading the file: the memmap is re-opened for every
batch (nanoGPT: a memmap kept open grows the process's memory as pages are touched). Tokenizers: `bytes` (UTF-8
bytes, vocab 256, needs nothing) and `gpt2` (BPE through `tiktoken`; its files must be cached when offline).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from meter.registry import Registry

TOKENIZERS: Registry = Registry("tokenizer")  # name -> () -> (encode(str) -> list[int], vocab_size)
DTYPE = np.uint16


@TOKENIZERS.register("bytes")
def byte_tokenizer() -> tuple[Callable[[str], list[int]], int]:
    return (lambda text: list(text.encode("utf-8"))), 256


@TOKENIZERS.register("gpt2")
def gpt2_tokenizer() -> tuple[Callable[[str], list[int]], int]:
    try:
        import tiktoken

        enc = tiktoken.get_encoding("gpt2")
    except ImportError:
        raise ImportError("tokenizer gpt2 needs tiktoken: pip install tiktoken (or use --tokenizer bytes)") from None
    except Exception as e:  # noqa: BLE001  (offline: requests/urllib errors while fetching the BPE files)
        raise OSError(f"tokenizer gpt2: tiktoken could not load its BPE files ({type(e).__name__}: {e}); offline, "
                      "put them in TIKTOKEN_CACHE_DIR first, or use --tokenizer bytes") from None
    return (lambda text: enc.encode_ordinary(text)), enc.n_vocab


def write_bins(text: str, out: Path, tokenizer: str = "bytes", val_fraction: float = 0.1) -> dict:
    """Tokenize `text`, write train.bin (first 1 - val_fraction) / val.bin (the rest) and meta.json; returns meta."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    encode, vocab = TOKENIZERS.get(tokenizer)()
    ids = np.asarray(encode(text), dtype=np.int64)
    if vocab > np.iinfo(DTYPE).max + 1:
        raise ValueError(f"tokenizer {tokenizer}: vocab {vocab} does not fit uint16")
    cut = int(len(ids) * (1 - val_fraction))
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", ids[:cut]), ("val", ids[cut:])):
        part.astype(DTYPE).tofile(out / f"{name}.bin")
    meta = {"tokenizer": tokenizer, "vocab_size": vocab, "dtype": "uint16", "n_train": cut, "n_val": len(ids) - cut}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def read_meta(folder: Path) -> dict:
    """meta.json of a token folder ({} when absent: a nanoGPT folder, GPT-2 ids)."""
    path = folder / "meta.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def check_bin(path: Path, min_tokens: int) -> int:
    """Number of tokens in a uint16 token file; ValueError naming it if its size is odd or too small."""
    if not path.is_file():
        raise ValueError(f"{path}: no such token file")
    size = path.stat().st_size
    if size % np.dtype(DTYPE).itemsize:
        raise ValueError(f"{path}: {size} bytes is not a whole number of uint16 tokens (wrong dtype?)")
    n = size // np.dtype(DTYPE).itemsize
    if n < min_tokens:
        raise ValueError(f"{path}: {n} tokens, fewer than the {min_tokens} one window needs")
    return n


def windows(path: Path, starts: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x, y [B, block] int64: tokens [s, s + block) and [s + 1, s + block + 1) for each start s (memmap re-opened)."""
    data = np.memmap(path, dtype=DTYPE, mode="r")
    rows = np.stack([data[s : s + block + 1] for s in starts.tolist()]).astype(np.int64)
    t = torch.from_numpy(rows)
    return t[:, :-1], t[:, 1:]


def random_starts(n_tokens: int, block: int, batch: int, seed: int, step: int) -> torch.Tensor:
    """[batch] window starts of one training step: a function of (seed, step) only."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randint(0, n_tokens - block, (batch,), generator=g)


class TokenWindows:
    """Sample dataset of `count` evenly spaced windows in tokens [lo, hi) of a token file: load(i) -> (x [S], y [S])."""

    def __init__(self, path: Path, block: int, lo: int, hi: int, count: int | None = None) -> None:
        span = hi - lo - block - 1  # the last start that still has block + 1 tokens
        if span < 0:
            raise ValueError(f"{path}: tokens [{lo}, {hi}) are fewer than one window of {block + 1}")
        most = span // block + 1  # non-overlapping windows that fit
        self.path, self.block, self.lo, self.hi = path, block, lo, hi
        self.count = most if count is None else min(count, most)
        self.stride = block if self.count == most else max(block, span // max(self.count - 1, 1))

    def __len__(self) -> int:
        return self.count

    def load(self, i: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = windows(self.path, torch.tensor([self.lo + i * self.stride]), self.block)
        return x[0], y[0]
