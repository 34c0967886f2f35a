"""The one shared training loop: fixed-shape batches from in-memory tensors, periodic evaluation with early-stop
tracking, a checkpoint at every epoch boundary, exact resume, a NaN guard, masks re-applied after every step,
and the meter wrapped around every phase.

Data order is a pure function of (seed, epoch) and the LR of (step, total), so resuming at step k replays
exactly what an uninterrupted run would have done (bit-identical on CPU).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from experiments import checkpoint as ckpt
from experiments import distributed
from experiments.augment import augment_batch
from experiments.data import Splits
from experiments.objectives import Classification, Objective
from experiments.optim import build_optimizer, lr_factor
from experiments.preemption import NEVER, Preempted, PreemptionFlag
from lth.masks import Mask, mask_applier
from meter import Measurement, Meter
from meter.flops import FlopCache
from meter.schedule import Plan, wait_until_allowed

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or Inf; the run fails with the step and the value."""


@dataclass
class EarlyStop:
    """The evaluation of minimum validation loss and the metrics there (Frankle & Carbin 2019 report test
    accuracy at this iteration)."""

    best_step: int = -1
    best_val_loss: float = float("inf")
    at_best: dict[str, float] = field(default_factory=dict)

    def update(self, step: int, metrics: dict[str, float]) -> None:
        if metrics["loss/val"] < self.best_val_loss:
            self.best_step, self.best_val_loss, self.at_best = step, metrics["loss/val"], dict(metrics)


@dataclass
class FitResult:
    metrics: dict[str, float]  # final evaluation
    early_stop: EarlyStop
    steps: int  # steps this unit trained (start_step..total_steps)
    flops_train: int
    flops_eval: int
    measurement: Measurement
    history: list[dict] = field(default_factory=list)  # per evaluation: step, flops_train so far, metrics


def iterations_per_epoch(n_train: int, batch_size: int) -> int:
    if n_train < batch_size:
        raise ValueError(f"optim.batch_size={batch_size} is larger than the training set ({n_train} samples)")
    return n_train // batch_size  # drop_last: every batch has the same shape


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def _eval_all(model: nn.Module, data: Splits, objective: Objective) -> dict[str, float]:
    out = {}
    for split, (x, y) in {"val": (data.x_val, data.y_val), "test": (data.x_test, data.y_test)}.items():
        if len(x):
            out |= {f"{k}/{split}": v for k, v in objective.evaluate(model, x, y).items()}
    if "loss/val" not in out:  # no validation split: early stopping falls back to the test split
        out |= {k.replace("/test", "/val"): v for k, v in out.items()}
    return out


def carbon_gate(plan: Plan | None, step: int, tag: str) -> None:
    """At an epoch boundary: wait while the carbon-aware plan says pause; when it has no allowed hours left, stop
    resumably (Preempted, like a SLURM preemption)."""
    if plan is not None and plan.should_pause(time.time()):
        log.info("%s: carbon-aware schedule pauses at step %d", tag, step)
        if not wait_until_allowed(plan):
            raise Preempted(signal.SIGTERM, step, "the carbon-aware schedule has no allowed hours left")


def fit(
    model: nn.Module,
    data: Splits,
    optim_cfg,
    *,
    seed: int,
    total_steps: int,
    meter: Meter,
    logger,
    tag: str,
    start_step: int = 0,
    mask: Mask | None = None,
    checkpoint_path: Path | None = None,
    snapshot_step: int | None = None,
    on_snapshot: Callable[[nn.Module, torch.optim.Optimizer, int], None] | None = None,
    progress: bool = True,
    flop_cache: FlopCache | None = None,
    optimizer_state: dict | None = None,
    lr_at: Callable[[int], float] | None = None,
    preemption: PreemptionFlag = NEVER,
    objective: Objective | None = None,
    carbon_plan: Plan | None = None,
) -> FitResult:
    """Train `model` from `start_step` to `total_steps`; resumes from `checkpoint_path` if it exists.

    `optimizer_state` starts from a saved optimizer state (e.g. rewound to step k) instead of a fresh one;
    `lr_at(step)` overrides the schedule's LR multiplier (fine-tuning at a fixed LR); `carbon_plan` (Flexible
    Start / Pause and Resume, meter.schedule) makes the loop wait, at epoch boundaries after a checkpoint, for
    allowed hours, and exit resumably when the plan is exhausted.
    """
    flop_cache = flop_cache or FlopCache()
    objective = objective or Classification()
    bs = optim_cfg.batch_size
    spe = iterations_per_epoch(len(data.x_train), bs)
    eval_every = optim_cfg.eval_every or spe
    optimizer = build_optimizer(model, optim_cfg)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    lr_at = lr_at or (lambda s: lr_factor(optim_cfg, s, total_steps))
    reapply_mask = mask_applier(model, mask) if mask is not None else None
    if reapply_mask is not None:
        reapply_mask()

    step, early, measured, flops_train, flops_eval, history = start_step, EarlyStop(), None, 0, 0, []
    if checkpoint_path is not None and ckpt.exists(checkpoint_path):
        state = ckpt.load_latest(checkpoint_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        ckpt.set_rng_state(state["rng"])
        if hasattr(logger, "truncate"):
            logger.truncate(state["logger_position"])  # drop rows logged after this checkpoint
        step, flops_train, flops_eval = state["step"], state["flops_train"], state["flops_eval"]
        early = EarlyStop(**state["early_stop"])
        measured = Measurement.from_dict(state["measurement"])
        history = list(state["history"])
        log.info("%s: resumed from %s at step %d", tag, checkpoint_path, step)

    def checkpoint() -> None:
        if checkpoint_path is None or not distributed.is_main():
            return
        ckpt.save_checkpoint(checkpoint_path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": ckpt.rng_state(),
            "logger_position": logger.position() if hasattr(logger, "position") else 0,
            "step": step, "flops_train": flops_train, "flops_eval": flops_eval,
            "early_stop": asdict(early), "measurement": measured.to_dict(), "history": history,
        })

    def run_eval() -> dict[str, float]:
        nonlocal flops_eval
        with meter.window("eval"):
            metrics = _eval_all(model, data, objective)
        n_eval = len(data.x_val) + len(data.x_test)
        flops_eval += n_eval * objective.infer_flops(model, data.x_train[:1], flop_cache)
        early.update(step, metrics)
        history.append({"step": step, "flops_train": flops_train, **metrics})
        extra = objective.step_logs() if hasattr(objective, "step_logs") else {}  # e.g. per-layer routing stats
        logger.log({"unit": tag, **metrics, "lr": optimizer.param_groups[0]["lr"], **extra}, step)
        return metrics

    rank, world_size = distributed.world()
    train_model = model
    if world_size > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(model)  # averages gradients across ranks
    model.train()
    disable = rank != 0 or not progress or bool(os.environ.get("CI"))
    bar = tqdm(total=total_steps, initial=step, desc=tag, disable=disable, leave=False)
    while step < total_steps:
        carbon_gate(carbon_plan, step, tag)
        chunk_end = min(total_steps, (step // spe + 1) * spe)  # one window + checkpoint per epoch
        with meter.window("train") as window:
            while step < chunk_end:
                if preemption.requested:
                    break
                if snapshot_step is not None and step == snapshot_step and on_snapshot is not None:
                    on_snapshot(model, optimizer, step)
                epoch, i = divmod(step, spe)
                idx = epoch_order(seed, epoch, len(data.x_train))[i * bs : (i + 1) * bs]
                idx = distributed.shard(idx)  # this rank's slice of the global batch
                xb, yb = data.x_train[idx], data.y_train[idx]
                xb = augment_batch(optim_cfg.augment, xb, seed, step)
                for g, base in zip(optimizer.param_groups, base_lrs):
                    g["lr"] = base * lr_at(step)
                loss = objective.loss(train_model, xb, yb)
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(f"{tag}: training loss is {float(loss.detach())} at step {step}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if reapply_mask is not None:
                    reapply_mask()
                objective.after_step(model)
                flops_train += world_size * objective.step_flops(model, xb, yb, flop_cache)
                step += 1
                bar.update(1)
                if step % eval_every == 0 or step == total_steps:
                    run_eval()
        window = distributed.sum_measurement(window)  # every rank's energy, once; checkpointed as the total
        measured = window if measured is None else measured + window
        checkpoint()
        if preemption.requested:
            bar.close()
            raise Preempted(preemption.signum, step)
    bar.close()
    if not history or history[-1]["step"] != step:
        with meter.window("eval") as window:
            run_eval()
        window = distributed.sum_measurement(window)
        measured = window if measured is None else measured + window
    if snapshot_step is not None and snapshot_step == step and on_snapshot is not None:
        on_snapshot(model, optimizer, step)
    final = {k: v for k, v in history[-1].items() if k != "flops_train"}
    return FitResult(metrics=final, early_stop=early, steps=total_steps - start_step, flops_train=flops_train,
                     flops_eval=flops_eval, measurement=measured, history=history)
