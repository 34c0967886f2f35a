"""What the shared loop optimises and reports, per kind of task, in a registry.

An objective turns a batch into a loss, evaluates a split into metrics (`loss` always; `acc`, `mse`, `bpc`...),
counts the FLOPs of one training step and of one inference, and runs whatever must follow each optimizer step.
Models may return `output` or `(output, auxes)` (sparse_moe's contract); auxiliary losses are added explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from meter.flops import FlopCache
from meter.registry import Registry

OBJECTIVES: Registry = Registry("objective")


def _split_output(out):
    """(prediction, auxes): models of sparse_moe return (output, list[MoEAux])."""
    if isinstance(out, tuple):
        return out[0], out[1]
    return out, []


class Objective:
    """Base: subclasses set `loss_fn(prediction, target) -> mean loss` and `batch_metrics`."""

    early_stop_metrics: tuple[str, ...] = ()  # metrics recorded at the minimum-validation-loss evaluation
    eval_batch_size = 4096

    def __init__(self, after_step: Callable[[nn.Module], None] | None = None) -> None:
        self._after_step = after_step

    def loss_fn(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def batch_metrics(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        """Sums over the batch (divided by the split size in `evaluate`)."""
        return {}

    def aux_loss(self, auxes) -> torch.Tensor | float:
        if not auxes:
            return 0.0
        from sparse_moe import total_aux_loss

        return total_aux_loss(auxes)

    def loss(self, model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        prediction, auxes = _split_output(model(xb))
        return self.loss_fn(prediction, yb) + self.aux_loss(auxes)

    def evaluate(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Metrics of in-memory x [N, ...], y [N, ...], in slices of `eval_batch_size`."""
        b = self.eval_batch_size
        return self.evaluate_batches(model, ((x[i : i + b], y[i : i + b]) for i in range(0, len(x), b)))

    @torch.no_grad()
    def evaluate_batches(self, model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> dict:
        """Metrics over a split given as batches (x [b, ...], y [b, ...]): per-sample means over all of them."""
        was_training = model.training
        model.eval()
        totals: dict[str, float] = {}
        n = 0
        for xb, target in batches:
            prediction, _ = _split_output(model(xb))
            batch = {"loss": float(self.loss_fn(prediction, target)) * len(target),
                     **self.batch_metrics(prediction, target)}
            for k, v in batch.items():
                totals[k] = totals.get(k, 0.0) + v
            n += len(target)
        model.train(was_training)
        return {k: v / n for k, v in totals.items()}

    def step_flops(self, model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, cache: FlopCache) -> int:
        """Forward + backward FLOPs of one step, counted once per batch shape."""
        return cache.get("train", model, (xb,), lambda out: self.loss_fn(_split_output(out)[0], yb)).total

    def executed_step_flops(self, model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, cache: FlopCache) -> int:
        """FLOPs this step executed: `step_flops` unless the work depends on the data (MoE routing overrides)."""
        return self.step_flops(model, xb, yb, cache)

    def infer_flops(self, model: nn.Module, example: torch.Tensor, cache: FlopCache) -> int:
        """FLOPs of one inference on one sample."""
        return cache.get("infer1", model, (example[:1],)).forward

    def after_step(self, model: nn.Module) -> None:
        if self._after_step is not None:
            self._after_step(model)


@OBJECTIVES.register("classification")
class Classification(Objective):
    """prediction [B, C] (or [B, S, C] with targets [B, S]); metrics: loss (cross-entropy), acc."""

    early_stop_metrics = ("acc",)

    def loss_fn(self, prediction, target):
        return F.cross_entropy(prediction.flatten(0, -2), target.flatten())

    def batch_metrics(self, prediction, target):
        correct = (prediction.argmax(-1) == target).float()
        per_sample = correct.flatten(1).mean(1) if correct.dim() > 1 else correct  # sequences: mean over positions
        return {"acc": float(per_sample.sum())}


@OBJECTIVES.register("regression")
class Regression(Objective):
    """prediction, target [B, D]; metrics: loss = mse."""

    early_stop_metrics = ("mse",)

    def loss_fn(self, prediction, target):
        return F.mse_loss(prediction, target)

    def batch_metrics(self, prediction, target):
        return {"mse": float(F.mse_loss(prediction, target, reduction="none").mean(-1).sum())}


@OBJECTIVES.register("language_model")
class LanguageModel(Classification):
    """Next-token prediction: prediction [B, S, V], target [B, S]; metrics: loss (nats/token), bpc, acc."""

    early_stop_metrics = ("bpc", "acc")

    def batch_metrics(self, prediction, target):
        nats = F.cross_entropy(prediction.flatten(0, -2), target.flatten(), reduction="none").view(target.shape)
        return {"bpc": float(nats.mean(-1).sum()) / math.log(2), **super().batch_metrics(prediction, target)}
