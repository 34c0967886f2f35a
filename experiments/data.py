"""`Splits`: the task-neutral train/validation/test tensors the shared loop (`experiments.trainer.fit`) trains on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Splits:
    """x_*: [N, ...] inputs; y_*: [N, ...] targets of any kind (class ids [N] int64, regression targets [N, k]
    float32, next-token ids [N, S] int64). `meta`: what the task knows about the data (e.g. "vocab_size"),
    never read by the loop. `lth.data.Splits` (class ids, `num_classes`) has the same six fields, so `fit`
    accepts it as it is."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if len(x) != len(y):
                raise ValueError(f"Splits: x_{split} has {len(x)} rows but y_{split} has {len(y)}")
        if len(self.x_train) == 0:
            raise ValueError("Splits: the training split is empty")
