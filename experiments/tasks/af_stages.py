"""Running the adaptive-frames stages resumably: `StageRunner` checkpoints after every stage epoch and skips what
is done on resume; pretrained backbones are cached across jobs under `backbone_cache_key`."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging

import torch

from adaptive_frames import AdaptiveFrameModel, BudgetController
from experiments import distributed
from experiments.checkpoint import exists, load_latest, rng_state, save_checkpoint, set_rng_state
from experiments.context import RunContext
from experiments.preemption import Preempted
from experiments.trainer import carbon_gate
from meter import Measurement

log = logging.getLogger(__name__)


def backbone_cache_key(cfg) -> str:
    """Everything that determines the pretrained backbones (not the policy, lam, budget or baselines)."""
    model = {k: v for k, v in dataclasses.asdict(cfg.model).items() if k not in ("policy", "policy_as_backbone")}
    key = {"data": dataclasses.asdict(cfg.data), "model": model, "pretrain_epochs": cfg.method.pretrain_epochs,
           "optim": {"lr": cfg.optim.lr, "batch_size": cfg.optim.batch_size}, "seed": cfg.seed,
           "torch": torch.__version__}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


class StageRunner:
    """Runs stage epochs in order, checkpointing after each one; on resume, skips what is done."""

    def __init__(self, ctx: RunContext, model: AdaptiveFrameModel) -> None:
        self.ctx, self.model = ctx, model
        self.path = ctx.job_dir / "checkpoint.pt"
        self.state = {"done": [], "stage": None, "epoch": 0, "optimizer": None, "grad_scaler": None, "lam": None,
                      "history": {}, "measurement": None}  # measurement: the training so far, across restarts
        if exists(self.path):
            saved = load_latest(self.path)
            model.load_state_dict(saved["model"])
            set_rng_state(saved["rng"])
            self.state = {k: saved.get(k, v) for k, v in self.state.items()}  # grad_scaler: newer than some
            log.info("adaptive_frames: resuming at stage %s epoch %d", self.state["stage"], self.state["epoch"])
        self.epochs_run = 0

    @contextlib.contextmanager
    def measure(self):
        """A meter window whose measurement is added to the checkpointed training total."""
        with self.ctx.meter.window("train") as window:
            yield
        window = distributed.sum_measurement(window)  # every rank's own energy, counted once
        before = self.state["measurement"]
        self.state["measurement"] = window.to_dict() if before is None else (
            Measurement.from_dict(before) + window).to_dict()

    @property
    def measurement(self) -> Measurement | None:
        m = self.state["measurement"]
        return None if m is None else Measurement.from_dict(m)

    def done(self, stage: str) -> bool:
        return stage in self.state["done"]

    def started(self, stage: str) -> bool:
        return self.done(stage) or self.state["stage"] == stage

    def run(self, stage: str, epochs: int, params, lr: float, one_epoch, budget: BudgetController | None = None,
            scaler: torch.amp.GradScaler | None = None):
        """one_epoch(optimizer, epoch, budget) -> history row; `scaler`: the stage's fp16 GradScaler, checkpointed
        with the optimizer. Returns the stage's history."""
        if self.done(stage):
            return self.state["history"].get(stage, [])
        optimizer = torch.optim.Adam(params, lr=lr)
        start = 0
        if self.state["stage"] == stage:
            start = self.state["epoch"]
            optimizer.load_state_dict(self.state["optimizer"])
            if scaler is not None and self.state["grad_scaler"]:
                scaler.load_state_dict(self.state["grad_scaler"])
            if budget is not None and self.state["lam"] is not None:
                budget.lam = self.state["lam"]
        history = self.state["history"].setdefault(stage, [])
        for epoch in range(start, epochs):
            carbon_gate(self.ctx.carbon_plan, self.epochs_run, stage)
            with self.measure():
                row = one_epoch(optimizer, epoch, budget)
            history.append(row)
            self.ctx.logger.log({"unit": stage, **row}, None)
            self.epochs_run += 1
            self.state.update(stage=stage, epoch=epoch + 1, optimizer=optimizer.state_dict(),
                              grad_scaler=None if scaler is None else scaler.state_dict(),
                              lam=budget.lam if budget is not None else None)
            self._save()
            if self.ctx.preemption.poll():  # any rank's signal: every rank stops after this same epoch
                distributed.barrier()  # rank 0's checkpoint is on disk before any rank leaves
                raise Preempted(self.ctx.preemption.agreed, self.epochs_run)
        self.state["done"].append(stage)
        self.state.update(stage=None, epoch=0, optimizer=None, grad_scaler=None, lam=None)
        self._save()
        return history

    def _save(self) -> None:
        if distributed.is_main():
            save_checkpoint(self.path, {"model": self.model.state_dict(), "rng": rng_state(), **self.state})
