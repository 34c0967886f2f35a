"""data=tokens: a nanoGPT token folder (sparse_moe.tokens) streamed from np.memmap for the MoE language models.

Training batches are random windows of block + 1 tokens whose starts are a function of (seed, step)
(`sparse_moe.tokens.random_starts`), read from a memmap re-opened per batch; validation and test are evenly spaced
windows of the first and second half of val.bin (`data.eval_windows` each). Nothing loads a whole file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from experiments import distributed
from experiments.errors import InputError
from experiments.inputs import INPUT_CHECKS
from experiments.schema import check as _check
from experiments.schema import schema
from experiments.streaming import LoaderCfg, StreamingSplits
from sparse_moe.tokens import TokenWindows, check_bin, random_starts, read_meta, windows


@schema("data", "base_tokens")
@dataclass
class TokensDataCfg:
    """A token folder <path>/{train,val}.bin (uint16, nanoGPT) with optional meta.json (vocab size, tokenizer);
    write one with `python -m sparse_moe.prepare`."""

    name: str = "tokens"
    path: Optional[str] = None
    vocab_size: Optional[int] = None  # needed only without meta.json (nanoGPT's GPT-2 bins: 50257)
    eval_windows: int = 64  # windows per evaluation split (evenly spaced over its half of val.bin)
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        _check(self.eval_windows >= 1, "data.eval_windows", self.eval_windows, ">= 1")
        _check(self.eval_batch_size >= 1, "data.eval_batch_size", self.eval_batch_size, ">= 1")
        _check(self.vocab_size is None or self.vocab_size >= 1, "data.vocab_size", self.vocab_size, ">= 1 or null")


def _vocab_size(cfg) -> int:
    folder = Path(cfg.data.path)
    vocab = read_meta(folder).get("vocab_size", cfg.data.vocab_size)
    if vocab is None:
        raise InputError(f"data.path={str(folder)!r} has no meta.json; set data.vocab_size (GPT-2 bins: 50257)")
    return int(vocab)


@INPUT_CHECKS.register("tokens")
def check_token_folder(cfg) -> None:
    """train.bin and val.bin exist, hold whole uint16 tokens, and enough of them for the block size."""
    if cfg.data.path is None or not Path(cfg.data.path).is_dir():
        raise InputError(f"data.path={cfg.data.path!r} is not a folder; write one with python -m sparse_moe.prepare")
    folder, block = Path(cfg.data.path), cfg.model.block_size
    meta = read_meta(folder)
    if meta.get("dtype", "uint16") != "uint16":
        raise InputError(f"{folder / 'meta.json'}: dtype {meta['dtype']!r}; token files must be uint16")
    try:
        check_bin(folder / "train.bin", block + 2)
        check_bin(folder / "val.bin", 2 * (block + 1))  # one window in each half (validation, test)
    except ValueError as e:
        raise InputError(str(e)) from None
    _vocab_size(cfg)


class TokenBatches:
    """`BatchSource` of random training windows: step s = epoch * steps_per_epoch + i reads `random_starts(s)`."""

    def __init__(self, path: Path, n_tokens: int, block: int, batch_size: int, seed: int, steps_per_epoch: int):
        self.path, self.n, self.block, self.batch_size, self.seed = path, n_tokens, block, batch_size, seed
        self.steps_per_epoch = steps_per_epoch

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(start, self.steps_per_epoch):
            step = epoch * self.steps_per_epoch + i
            starts = distributed.shard(random_starts(self.n, self.block, self.batch_size, self.seed, step))
            yield windows(self.path, starts, self.block)


@dataclass
class TokenSplits(StreamingSplits):
    """StreamingSplits whose training batches are random memmap windows (an epoch = as many windows as fit)."""

    def train_batches(self, batch_size: int, seed: int) -> TokenBatches:
        t = self.train
        return TokenBatches(t.path, t.hi, t.block, batch_size, seed, max(1, len(t) // batch_size))


def load_tokens(cfg) -> TokenSplits:
    """The token folder of `cfg.data` as TokenSplits; meta carries vocab_size."""
    folder, block = Path(cfg.data.path), cfg.model.block_size
    n_train, n_val = check_bin(folder / "train.bin", block + 2), check_bin(folder / "val.bin", 2 * (block + 1))
    train = TokenWindows(folder / "train.bin", block, 0, n_train)
    half = n_val // 2
    val = TokenWindows(folder / "val.bin", block, 0, half, cfg.data.eval_windows)
    test = TokenWindows(folder / "val.bin", block, half, n_val, cfg.data.eval_windows)
    loader = LoaderCfg(eval_batch_size=cfg.data.eval_batch_size)
    return TokenSplits(train, val, test, loader, meta={"vocab_size": _vocab_size(cfg), **read_meta(folder)})
