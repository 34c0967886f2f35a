"""Hooks into the training loop (open_lth's hook list): a `Callback` overrides what it needs.

Every hook gets the `Loop` (model, optimizer, step, spec, logger); `on_step_end` also the step's loss tensor
(detached: reading it never changes training) and `on_eval` the evaluation's metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from experiments.loggers import Logger


class LoopSpec(Protocol):
    """What hooks read of the run's `experiments.trainer.FitSpec` (a protocol, not an import: trainer.py imports
    this module, so importing trainer here would make a cycle)."""

    tag: str


@dataclass
class Loop:
    """The loop's state as hooks see it."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    spec: LoopSpec  # the trainer's FitSpec
    logger: Logger
    step: int
    extra: dict = field(default_factory=dict)  # checkpointed state of callbacks (`Callback.state_key`)


class Callback:
    state_key: str | None = None  # a callback with state keeps it in loop.extra[state_key] (checkpointed)

    def on_train_start(self, loop: Loop) -> None: ...

    def on_step_start(self, loop: Loop) -> None: ...

    def on_step_end(self, loop: Loop, loss: torch.Tensor) -> None: ...

    def on_eval(self, loop: Loop, metrics: dict[str, float]) -> None: ...

    def on_epoch_end(self, loop: Loop, metrics: dict[str, float]) -> None: ...

    def on_train_end(self, loop: Loop) -> None: ...


class Snapshot(Callback):
    """Calls `fn(model, optimizer, step)` once the loop reaches `step` (before that step trains), e.g. to save
    the rewind point of IMP."""

    def __init__(self, step: int, fn: Callable[[nn.Module, torch.optim.Optimizer, int], None]) -> None:
        self.step, self.fn = step, fn

    def on_step_start(self, loop: Loop) -> None:
        if loop.step == self.step:
            self.fn(loop.model, loop.optimizer, loop.step)

    def on_train_end(self, loop: Loop) -> None:
        if loop.step == self.step:
            self.fn(loop.model, loop.optimizer, loop.step)


class TrainLoss(Callback):
    """Logs `loss/train` (mean over the steps since the last row) and the LR every `every` steps. The running
    sum is checkpointed, so a resumed run logs the same rows as an uninterrupted one."""

    state_key = "train_loss"

    def __init__(self, every: int) -> None:
        self.every = every

    def on_step_end(self, loop: Loop, loss: torch.Tensor) -> None:
        acc = loop.extra.setdefault(self.state_key, {"sum": 0.0, "n": 0})
        acc["sum"] += float(loss)
        acc["n"] += 1
        if loop.step % self.every == 0:
            loop.logger.log({"unit": loop.spec.tag, "loss/train": acc["sum"] / acc["n"],
                             "lr": loop.optimizer.param_groups[0]["lr"]}, loop.step)
            acc["sum"], acc["n"] = 0.0, 0
