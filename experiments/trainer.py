"""The one shared training loop: fixed-shape batches from in-memory tensors, periodic evaluation with early-stop
tracking, a checkpoint at every epoch boundary, exact resume, a NaN guard, masks re-applied after every step,
and the meter wrapped around every phase.

Data order is a pure function of (seed, epoch) and the LR of (step, total), so resuming at step k replays
exactly what an uninterrupted run would have done (bit-identical on CPU).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import nn

from experiments import carbon_requeue, distributed
from experiments import checkpoint as ckpt
from experiments.augment import augment_batch
from experiments.batches import BatchSource, TensorBatches, epoch_order, iterations_per_epoch  # noqa: F401 (re-exported)
from experiments.callbacks import Callback, Loop, Snapshot, TrainLoss
from experiments.data import Splits
from experiments.loggers import Logger, NullLogger, as_logger
from experiments.objectives import Classification, Objective
from experiments.optim import build_optimizer, lr_factor
from experiments.preemption import NEVER, Preempted, PreemptionFlag
from experiments.progress import JobProgress, as_progress
from experiments.runtime import CPU, Runtime
from experiments.streaming import batch_source
from lth.masks import Mask, mask_applier
from meter import Measurement, Meter
from meter.flops import FlopCache
from meter.schedule import Plan

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
    measurement: Measurement  # the unit's energy: measurement_train + measurement_eval
    # disjoint `train` and `eval` windows, and training FLOPs with routed rows as executed (None: resumed from an
    # older checkpoint that did not keep them)
    measurement_train: Measurement | None = None
    measurement_eval: Measurement | None = None
    flops_train_executed: int | None = None
    history: list[dict] = field(default_factory=list)  # per evaluation: step, flops_train so far, metrics
    compiled: str = "none"  # what torch.compile compiled for training (Runtime.prepare_model)


def _on_device(data: Splits, runtime: Runtime) -> Splits:
    """A shallow copy of `data` whose tensor splits are on the runtime's device (`data` itself on CPU)."""
    if runtime.device.type == "cpu":
        return data
    if hasattr(data, "on_device"):  # a streaming split (experiments.streaming) moves each evaluation batch
        return data.on_device(runtime.to_device)
    moved = copy.copy(data)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        if isinstance(getattr(data, name, None), torch.Tensor):
            setattr(moved, name, runtime.to_device(getattr(data, name)))
    return moved


def _eval_all(model: nn.Module, data: Splits, objective: Objective) -> dict[str, float]:
    out = {}
    for split, (x, y) in {"val": (data.x_val, data.y_val), "test": (data.x_test, data.y_test)}.items():
        if len(x) and hasattr(data, "eval_batches"):  # a streaming split (experiments.streaming): batch by batch
            out |= {f"{k}/{split}": v for k, v in objective.evaluate_batches(model, data.eval_batches(split)).items()}
        elif len(x):
            out |= {f"{k}/{split}": v for k, v in objective.evaluate(model, x, y).items()}
    if "loss/val" not in out:  # no validation split: early stopping falls back to the test split
        out |= {k.replace("/test", "/val"): v for k, v in out.items()}
    return out


def energy_row(result: FitResult) -> dict:
    """The unit's energy/carbon/time row (train + eval) with the disjoint windows beside it (J, s; null if unknown)."""
    parts = {"train": result.measurement_train, "eval": result.measurement_eval}
    known = all(m is not None for m in parts.values())
    return {**result.measurement.row(),
            **{f"energy/{k}_joules": m.joules if known else None for k, m in parts.items()},
            **{f"time/{k}_s": m.seconds if known else None for k, m in parts.items()}}


def carbon_gate(plan: Plan | None, step: int, tag: str) -> None:
    """At an epoch boundary, after the checkpoint: wait while the carbon-aware plan says pause, or under SLURM
    requeue the job to begin at the next allowed window (experiments.carbon_requeue); when the plan has no allowed
    hours left, stop resumably (Preempted, like a SLURM preemption)."""
    carbon_requeue.gate(plan, step, tag)


@dataclass
class FitSpec:
    """One unit of training: steps start_step..total_steps in the data order of `seed`, from a given state."""

    total_steps: int
    seed: int
    tag: str = "fit"  # the unit's name in logs, progress and metrics.jsonl rows
    start_step: int = 0
    checkpoint_path: Path | None = None  # resumed from if it exists; written at every epoch boundary
    mask: Mask | None = None  # re-applied after every optimizer step
    optimizer_state: dict | None = None  # a saved optimizer state to start from (e.g. rewound to step k)
    lr_at: Callable[[int], float] | None = None  # LR multiplier per step; None: optim_cfg's schedule
    objective: Objective | None = None  # None: classification
    batches: BatchSource | None = None  # None: TensorBatches over data.x_train/y_train (experiments.batches)


@dataclass
class Services:
    """What the runner lends the loop. A `RunContext` has the same attributes and can be passed instead."""

    meter: Meter
    logger: Logger = field(default_factory=NullLogger)
    progress: bool | JobProgress = True
    flop_cache: FlopCache | None = None
    preemption: PreemptionFlag = NEVER
    carbon_plan: Plan | None = None  # carbon-aware schedule: wait at epoch boundaries, stop resumably when spent
    runtime: Runtime | None = None  # device, precision, compile (experiments.runtime); None: CPU fp32 eager


def _from_keywords(keywords: dict) -> tuple[FitSpec, Services, list[Callback]]:
    """The keyword form of `fit`: FitSpec and Services fields by name, plus snapshot_step/on_snapshot."""
    kw = dict(keywords)
    snapshot_step, on_snapshot = kw.pop("snapshot_step", None), kw.pop("on_snapshot", None)
    services = Services(**{f.name: kw.pop(f.name) for f in fields(Services) if f.name in kw})
    callbacks = [Snapshot(snapshot_step, on_snapshot)] if snapshot_step is not None and on_snapshot else []
    return FitSpec(**kw), services, callbacks


def fit(model: nn.Module, data: Splits, optim_cfg, spec: FitSpec | None = None, services: Services | None = None,
        callbacks: Sequence[Callback] = (), **keywords) -> FitResult:
    """Train `model` as `spec` says, with the runner's `services` (or a RunContext); resumes from
    `spec.checkpoint_path` if it exists. `callbacks` hook into the loop (experiments.callbacks).

    Keyword form: `fit(model, data, optim, seed=0, total_steps=24, meter=m, logger=l, tag="t")` takes the fields
    of FitSpec and Services by name (and `snapshot_step`/`on_snapshot` for a Snapshot callback).
    """
    if keywords:
        if spec is not None or services is not None:
            raise TypeError("fit: pass either spec and services, or their fields as keywords, not both")
        spec, services, snapshot = _from_keywords(keywords)
        callbacks = [*snapshot, *callbacks]
    return _Trainer(model, data, optim_cfg, spec, services, callbacks).run()


class _Trainer:
    """The state of one `fit` call; methods are the loop's phases, in the order `run` calls them."""

    def __init__(self, model, data: Splits, optim_cfg, spec: FitSpec, services, callbacks: Sequence[Callback]):
        # The runtime borrows the model onto its device for this fit and `run` hands it back where it was.
        self.runtime = getattr(services, "runtime", None) or CPU
        self.home = next((p.device for p in model.parameters()), self.runtime.device)
        self.runtime.prepare_model(model, compile_it=False)
        data = _on_device(data, self.runtime)  # in-memory splits live on the device (the fastest loader)
        self.scaler = self.runtime.grad_scaler()  # fp16 only; checkpointed
        self.model, self.data, self.optim_cfg, self.spec = model, data, optim_cfg, spec
        self.meter, self.preemption, self.carbon_plan = services.meter, services.preemption, services.carbon_plan
        self.logger = as_logger(services.logger)
        self.flop_cache = services.flop_cache or FlopCache()
        self.progress = as_progress(services.progress)
        self.objective = spec.objective or Classification()
        self.bs = optim_cfg.batch_size
        self.batches = spec.batches or batch_source(data, self.bs, spec.seed)  # tensors, or the data's own stream
        self.spe = self.batches.steps_per_epoch
        self.eval_every = optim_cfg.eval_every or self.spe
        self.callbacks = [*callbacks] + ([TrainLoss(self.logger.log_every)] if self.logger.log_every else [])
        optimizer = build_optimizer(model, optim_cfg)
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        if spec.optimizer_state is not None:
            optimizer.load_state_dict(spec.optimizer_state)
        total = spec.total_steps
        self.lr_at = spec.lr_at or (lambda s: lr_factor(optim_cfg, s, total))
        mask = {k: m.to(self.runtime.device) for k, m in spec.mask.items()} if spec.mask is not None else None
        self.reapply_mask = mask_applier(model, mask) if mask is not None else None
        if self.reapply_mask is not None:
            self.reapply_mask()
        self.loop = Loop(model=model, optimizer=optimizer, spec=spec, logger=self.logger, step=spec.start_step)
        self.early, self.measured, self.flops_train, self.flops_eval, self.history = EarlyStop(), None, 0, 0, []
        self.parts: dict | None = {"train": None, "eval": None}  # the unit's disjoint windows, summed per name
        self.flops_executed: int | None = 0  # flops_train with each step's routed rows as executed
        self._epoch_iter: tuple[int, Iterator | None] = (-1, None)  # (epoch, its batches from the current step)

    def resume(self) -> None:
        """Load the checkpoint if there is one; either way drop the log rows it does not cover."""
        path = self.spec.checkpoint_path
        if path is None or not ckpt.exists(path):
            self.logger.start_unit(self.spec.tag, None)
            return
        state = ckpt.load_latest(path)
        self.model.load_state_dict(state["model"])
        self.loop.optimizer.load_state_dict(state["optimizer"])
        ckpt.set_rng_state(state["rng"])
        self.logger.start_unit(self.spec.tag, state["logger_position"])
        self.loop.step, self.flops_train, self.flops_eval = state["step"], state["flops_train"], state["flops_eval"]
        self.early = EarlyStop(**state["early_stop"])
        self.measured = Measurement.from_dict(state["measurement"])
        parts = state.get("measurement_parts")  # absent in older checkpoints: the split is unknown
        self.parts = None if parts is None else {"train": None, "eval": None} | {
            k: Measurement.from_dict(m) for k, m in parts.items()}
        self.flops_executed = state.get("flops_train_executed")
        self.history = list(state["history"])
        self.loop.extra = dict(state.get("extra", {}))
        if self.scaler is not None and "grad_scaler" in state:  # fp16: the loss scale it had reached
            self.scaler.load_state_dict(state["grad_scaler"])
        log.info("%s: resumed from %s at step %d", self.spec.tag, path, self.loop.step)

    def checkpoint(self) -> None:
        if self.spec.checkpoint_path is None or not distributed.is_main():
            return
        ckpt.save_checkpoint(self.spec.checkpoint_path, {
            "model": self.model.state_dict(), "optimizer": self.loop.optimizer.state_dict(), "rng": ckpt.rng_state(),
            "logger_position": self.logger.position(), "step": self.loop.step, "flops_train": self.flops_train,
            "flops_eval": self.flops_eval, "early_stop": asdict(self.early), "measurement": self.measured.to_dict(),
            "history": self.history, "extra": self.loop.extra,
            "measurement_parts": None if self.parts is None else {
                k: m.to_dict() for k, m in self.parts.items() if m is not None},
            "flops_train_executed": self.flops_executed,
            **({"grad_scaler": self.scaler.state_dict()} if self.scaler is not None else {}),
        })

    def evaluate(self) -> dict[str, float]:
        step, objective = self.loop.step, self.objective
        with self.meter.window("eval", disjoint=True) as window, self.runtime.autocast():
            metrics = _eval_all(self.model, self.data, objective)
        self.add_window(window, "eval")  # carved out of the enclosing train window: disjoint
        n_eval = len(self.data.x_val) + len(self.data.x_test)
        self.flops_eval += n_eval * objective.infer_flops(self.model, self.data.x_train[:1], self.flop_cache)
        self.early.update(step, metrics)
        self.history.append({"step": step, "flops_train": self.flops_train, **metrics})
        extra = objective.step_logs() if hasattr(objective, "step_logs") else {}  # e.g. per-layer routing stats
        self.logger.log({"unit": self.spec.tag, **metrics, "lr": self.loop.optimizer.param_groups[0]["lr"], **extra},
                        step)
        for cb in self.callbacks:
            cb.on_eval(self.loop, metrics)
        return metrics

    def add_window(self, window: Measurement, part: str) -> None:
        """Add a closed `train` or `eval` window (disjoint) to the unit's total and to its part."""
        window = distributed.sum_measurement(window)  # every rank's energy, once; checkpointed as the total
        self.measured = window if self.measured is None else self.measured + window
        if self.parts is not None:
            self.parts[part] = window if self.parts[part] is None else self.parts[part] + window

    def part(self, name: str) -> Measurement | None:
        """The unit's `train` or `eval` energy so far (zero if none ran); None when the split is unknown."""
        return None if self.parts is None else self.parts[name] or Measurement(name=name)

    def train_step(self, train_model: nn.Module, world_size: int) -> None:
        loop, spec, optimizer, objective = self.loop, self.spec, self.loop.optimizer, self.objective
        epoch, i = divmod(loop.step, self.spe)
        if self._epoch_iter[0] != epoch:  # a new epoch, or a resume mid-epoch: the source starts at batch i
            self._epoch_iter = (epoch, self.batches.epoch(epoch, start=i))
        xb, yb = self.runtime.to_device(next(self._epoch_iter[1]))  # this rank's slice of the global batch
        xb = augment_batch(self.optim_cfg.augment, xb, spec.seed, loop.step)
        for g, base in zip(optimizer.param_groups, self.base_lrs):
            g["lr"] = base * self.lr_at(loop.step)
        with self.runtime.autocast():  # fp32: no-op; the loss itself is reported in fp32
            loss = objective.loss(train_model, xb, yb)
        loss = loss.float() if loss.dtype in (torch.float16, torch.bfloat16) else loss
        finite = bool(torch.isfinite(loss))
        if world_size > 1 and distributed.agree_max(int(not finite)):  # every rank stops, none waits in backward
            raise NonFiniteLossError(f"{spec.tag}: training loss is not finite on at least one of {world_size} "
                                     f"ranks at step {loop.step} (this rank's: {float(loss.detach())})")
        if not finite:
            raise NonFiniteLossError(f"{spec.tag}: training loss is {float(loss.detach())} at step {loop.step}")
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            optimizer.step()
        else:  # fp16: scaled backward; a step with inf/nan gradients is skipped and the scale backs off
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
        if self.reapply_mask is not None:
            self.reapply_mask()
        objective.after_step(self.model)
        self.flops_train += world_size * objective.step_flops(self.model, xb, yb, self.flop_cache)
        if self.flops_executed is not None:  # routing-dependent (MoE): this step's rows, not the counted batch's
            self.flops_executed += world_size * objective.executed_step_flops(self.model, xb, yb, self.flop_cache)
        loop.step += 1
        for cb in self.callbacks:
            cb.on_step_end(loop, loss.detach())

    def run(self) -> FitResult:
        self.resume()
        loop, total = self.loop, self.spec.total_steps
        rank, world_size = distributed.world()
        train_model = self.model
        if world_size > 1:
            train_model = torch.nn.parallel.DistributedDataParallel(self.model)  # averages gradients across ranks
        train_model, compiled = self.runtime.prepare_model(train_model)  # the training forward; eval stays eager
        self.model.train()
        job = self.progress if rank == 0 else JobProgress(enabled=False)
        unit = job.unit(self.spec.tag, loop.step, total, self.spe)
        for cb in self.callbacks:
            cb.on_train_start(loop)
        try:
            while loop.step < total:
                carbon_gate(self.carbon_plan, loop.step, self.spec.tag)
                chunk_end = min(total, (loop.step // self.spe + 1) * self.spe)  # one window + checkpoint per epoch
                with self.meter.window("train") as window:
                    while loop.step < chunk_end and not self.preemption.poll():  # any rank's signal stops all
                        for cb in self.callbacks:
                            cb.on_step_start(loop)
                        self.train_step(train_model, world_size)
                        unit.step(loop.step)
                        if loop.step % self.eval_every == 0 or loop.step == total:
                            self.evaluate()
                self.add_window(window, "train")
                self.checkpoint()
                if self.preemption.agreed:  # every rank stopped at this step and checkpointed it
                    distributed.barrier()  # rank 0's checkpoint is on disk before any rank leaves (and may resume)
                    raise Preempted(self.preemption.agreed, loop.step)
                last = self.history[-1] if self.history and self.history[-1]["step"] == loop.step else {}
                unit.epoch_end(loop.step, {k: v for k, v in last.items() if k.endswith("/val")})
                for cb in self.callbacks:
                    cb.on_epoch_end(loop, last)
        finally:
            unit.close()
        if not self.history or self.history[-1]["step"] != loop.step:
            self.evaluate()  # its own eval window
        for cb in self.callbacks:
            cb.on_train_end(loop)
        final = {k: v for k, v in self.history[-1].items() if k != "flops_train"}
        self.model.to(self.home)  # handed back where the task had it (a no-op on CPU)
        return FitResult(metrics=final, early_stop=self.early, steps=total - self.spec.start_step,
                         flops_train=self.flops_train, flops_eval=self.flops_eval, measurement=self.measured,
                         measurement_train=self.part("train"), measurement_eval=self.part("eval"),
                         flops_train_executed=self.flops_executed,
                         history=self.history, compiled=compiled)
