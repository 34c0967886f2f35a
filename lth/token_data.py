"""`mnist1d_tokens`: MNIST-1D as token sequences, a sequence task for transformers generated offline in seconds.

Each of a sample's 40 values becomes one of `vocab_size` tokens (equal-width bins over the training range).
target="label": x [N, 40] int64 tokens, y [N] the digit (sequence classification, 10 classes);
target="next_token": x [N, 39] tokens, y [N, 39] the following token (causal language modelling, vocab_size
classes per position).
"""

from __future__ import annotations

import torch

from lth.data import mnist1d
from lth.splits import DATASETS, Splits

TARGETS = ("label", "next_token")


@DATASETS.register("mnist1d_tokens")
def mnist1d_tokens(vocab_size: int = 32, target: str = "label", **mnist1d_kwargs) -> Splits:
    if target not in TARGETS:
        raise ValueError(f"data.target={target!r} is not one of {', '.join(TARGETS)}")
    if vocab_size < 2:
        raise ValueError(f"data.vocab_size={vocab_size} must be >= 2")
    d = mnist1d(**mnist1d_kwargs)
    lo, hi = float(d.x_train.min()), float(d.x_train.max())

    def tokens(x: torch.Tensor) -> torch.Tensor:  # [N, 40] float -> [N, 40] int64 in [0, vocab_size)
        return ((x - lo) / (hi - lo) * vocab_size).floor().long().clamp_(0, vocab_size - 1)

    parts = [(tokens(x), y) for x, y in ((d.x_train, d.y_train), (d.x_val, d.y_val), (d.x_test, d.y_test))]
    if target == "next_token":
        parts = [(t[:, :-1], t[:, 1:]) for t, _ in parts]
    (xt, yt), (xv, yv), (xs, ys) = parts
    return Splits(xt, yt, xv, yv, xs, ys, num_classes=vocab_size if target == "next_token" else d.num_classes)
