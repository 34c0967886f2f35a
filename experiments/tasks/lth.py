"""The `lth` task: IMP with its baselines (`lth.run_imp`, one row per (level, kind)) with files, resume and records
around it. The method (retraining modes, baselines, rewinding) lives in `lth/`; this module only decides where
units keep their files, how one unit is trained (`experiments.trainer.fit`) and what its row holds.

Finished units leave `result.json`; a rerun in the same folder skips them (reloading a ticket's trained weights
and the rewind snapshot) and resumes the unfinished one from its checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from experiments import debug, distributed
from experiments.callbacks import Snapshot
from experiments.checkpoint import load_checkpoint
from experiments.checkpoint import save_checkpoint as _save_checkpoint
from experiments.context import RunContext
from experiments.optim import lr_factor
from experiments.stream_data import load_streaming, skipped_row
from experiments.tasks.lth_flops import effective_train_flops
from experiments.tasks.registry import TASKS
from experiments.trainer import FitSpec, energy_row, fit, iterations_per_epoch
from experiments.units import run_unit
from lth import (
    IMP,
    RewindPoint,
    Unit,
    apply_mask,
    density,
    layer_densities,
    prunable_names,
    run_imp,
)
from lth.connectivity import classification_error, linear_path
from lth.data import load_dataset
from meter.flops import CONVENTION, param_counts

log = logging.getLogger(__name__)


def save_checkpoint(path: Path, state: dict) -> None:
    if distributed.is_main():  # every rank computes the same state; rank 0 writes it
        _save_checkpoint(path, state)


def load_data(cfg):
    """In-memory `Splits`, or `StreamingSplits` where the data config streams (experiments.stream_data)."""
    data = load_streaming(cfg)
    return debug.overfit(cfg, data if data is not None else load_dataset(cfg.data.name, **cfg.data.loader_kwargs()))


def build(cfg, data):
    """A new model of `cfg.model` for `data` (initialised from the global RNG: seed it first)."""
    return cfg.model.build(data.in_features, data.num_classes)


def init_model(cfg, data, init_seed: int):
    """A freshly initialised model of `cfg.model` for `data`, seeded independently of any earlier RNG use."""
    torch.manual_seed(init_seed)
    return build(cfg, data)


def ticket_kwargs(cfg, spe: int, example=None) -> dict:
    """`lth.run_imp` / `LotteryTicket` keyword arguments of `cfg.method` (rewind resolved with `spe` steps/epoch;
    `example`: one input batch, from whose forward pass the output layer is found unless method.output_layer)."""
    m = cfg.method
    return dict(strategy=m.strategy, rates=m.prune_fraction, output_rate=m.output_prune_fraction,
                output_layer=m.output_layer, example_input=example,
                rewind=m.rewind, iterations_per_epoch=spe, exclude=list(m.exclude), seed=cfg.seed,
                retrain=m.retrain, optimizer_state=m.optimizer_state, random_prune_scope=m.random_prune_scope)


def _infer_flops(ctx: RunContext, model, mask, example: torch.Tensor) -> tuple[int, int]:
    """(effective, dense) FLOPs of one inference; a masked layer's FLOPs scale with its density."""
    count = ctx.flop_cache.get("infer1", model, (example,))
    effective = count.forward - sum(
        count.by_module_forward[name.rsplit(".", 1)[0]] * (1.0 - d) for name, d in layer_densities(mask).items()
    )
    return int(round(effective)), count.forward


class LevelFiles:
    """Where one run keeps its IMP state: levels/rewind.pt, levels/level_XX/{mask.pt, <kind>/...}."""

    def __init__(self, job_dir: Path) -> None:
        self.root = job_dir / "levels"
        self.rewind = self.root / "rewind.pt"

    def level(self, level: int) -> Path:
        return self.root / f"level_{level:02d}"

    def final(self, level: int) -> Path:
        return self.level(level) / "ticket" / "final.pt"


@dataclass
class Schedule:
    """The resolved step numbers of one IMP run on one dataset."""

    total: int  # steps of one full training
    rewind_step: int
    final_lr: float  # the schedule's LR multiplier at the last step (fine-tuning)


def schedule(cfg, data) -> Schedule:
    spe = iterations_per_epoch(len(data.x_train), cfg.optim.batch_size)
    total = cfg.optim.steps if cfg.optim.steps is not None else cfg.optim.epochs * spe
    rewind_step = RewindPoint.parse(cfg.method.rewind).to_iteration(spe)
    if rewind_step >= total:
        raise ValueError(f"method.rewind={cfg.method.rewind!r} is iteration {rewind_step}, past training end {total}")
    return Schedule(total, rewind_step, lr_factor(cfg.optim, total - 1, total))


def train_unit(cfg, ctx: RunContext, data, sched: Schedule, unit_dir: Path, level: int, kind: str, start_fn,
               *, on_snapshot=None, extra: dict | None = None, data_seed: int | None = None, post=None,
               fixed_lr: bool = False) -> dict:
    """Train one (level, kind) unless `unit_dir/result.json` exists; returns its row.

    `start_fn()` -> (model with mask applied, first step, mask, optimizer state or None), called only when the
    unit must be trained; `post(model) -> dict` adds fields computed from the trained model to its row;
    `fixed_lr` holds the LR at the schedule's final value (fine-tuning).
    """
    def train() -> dict:
        model, start, unit_mask, opt_state = start_fn()
        seed = data_seed
        if seed is None:
            seed = cfg.seed if cfg.method.replay_data_order else cfg.seed + 31 * level
        result = fit(model, data, cfg.optim, FitSpec(
            total_steps=sched.total, seed=seed, tag=f"L{level:02d}/{kind}", start_step=start,
            checkpoint_path=unit_dir / "checkpoint.pt", mask=unit_mask, optimizer_state=opt_state,
            lr_at=(lambda s: sched.final_lr) if fixed_lr else None,
        ), ctx, callbacks=[Snapshot(sched.rewind_step, on_snapshot)] if on_snapshot else [])
        apply_mask(model, unit_mask)
        if kind == "ticket":
            save_checkpoint(unit_dir / "final.pt", {"model": model.state_dict()})
        save_checkpoint(unit_dir / "mask.pt", {"mask": unit_mask})
        return {**_row(cfg, ctx, level, kind, model, unit_mask, result, sched.rewind_step, data),
                **(extra or {}), **(post(model) if post else {})}

    return run_unit(unit_dir, ctx, train)


def _unit_fn(cfg, ctx: RunContext, data, sched: Schedule, files: LevelFiles, **kwargs):
    """`train_fn(model, unit)` of `lth.run_imp`: one unit through `train_unit`, its files kept in `files`."""

    def save_rewind(model, optimizer, step: int, unit: Unit) -> None:
        unit.snapshot(step, optimizer)
        save_checkpoint(files.rewind, unit.ticket.snapshot_state())

    def train(model, unit: Unit) -> dict:
        unit_dir = files.level(unit.level) / unit.kind
        finished = (unit_dir / "result.json").exists()
        if unit.kind == "ticket" and unit.level > 0 and not (files.level(unit.level) / "mask.pt").exists():
            save_checkpoint(files.level(unit.level) / "mask.pt", {"mask": unit.mask})  # transfer reads it
        snap = (lambda m, o, s: save_rewind(m, o, s, unit)) if unit.level == 0 and unit.kind == "ticket" else None
        row = train_unit(cfg, ctx, data, sched, unit_dir, unit.level, unit.kind,
                         lambda: (model, unit.start_step, unit.mask, unit.optimizer_state), on_snapshot=snap,
                         fixed_lr=unit.fixed_lr, **kwargs)
        if finished and unit.kind == "ticket":  # skipped: the next level prunes these weights
            model.load_state_dict(load_checkpoint(files.final(unit.level))["model"])
        if snap is not None and not unit.ticket.has_snapshot:  # skipped, or resumed past the rewind step
            unit.ticket.load_snapshot(load_checkpoint(files.rewind))
        return row

    return train


@TASKS.register("lth")
def imp_task(cfg, ctx: RunContext) -> list[dict]:
    data = load_data(cfg)
    sched = schedule(cfg, data)
    files = LevelFiles(ctx.job_dir)

    def after_level(imp: IMP, level: int) -> list[dict]:
        return [stability_twin(cfg, ctx, data, sched, files, imp, level)] if cfg.method.stability else []

    kwargs = ticket_kwargs(cfg, iterations_per_epoch(len(data.x_train), cfg.optim.batch_size), data.x_train[:1])
    model = None
    if hasattr(cfg.model, "ticket_names"):  # a pretrained checkpoint (model=hf): the ticket trains the loaded model,
        model = init_model(cfg, data, cfg.seed)  # random reinit is its library's init; the model picks its weights
        kwargs["names"] = cfg.model.ticket_names(model, kwargs.pop("exclude"))
    run_imp(model if model is not None else (lambda: build(cfg, data)), _unit_fn(cfg, ctx, data, sched, files),
            cfg.method.levels, list(cfg.method.baselines), after_level=after_level, **kwargs)
    return ctx.rows


def stability_twin(cfg, ctx: RunContext, data, sched: Schedule, files: LevelFiles, imp: IMP, level: int) -> dict:
    """Linear mode connectivity (Frankle et al. 2020): a second copy of this level's ticket trained from the same
    start (level 0: the dense network at step k) with another data order; its row carries the error barrier between
    the two."""

    def start():
        model, unit = imp.twin(level)
        return model, unit.start_step, unit.mask, unit.optimizer_state

    def barrier(twin) -> dict:
        ticket = load_checkpoint(files.level(level) / "ticket" / "final.pt")["model"]
        path = linear_path(ticket, twin.state_dict(), classification_error(twin, data.x_test, data.y_test),
                           num_points=cfg.method.stability_points)
        return {"lth/lmc_barrier": path.barrier, "lth/lmc_stable": path.is_stable(),
                "lth/lmc_max_error": max(path.errors)}

    return train_unit(cfg, ctx, data, sched, files.level(level) / "stability_twin", level, "stability_twin", start,
                      data_seed=cfg.seed + 1_000_003, post=barrier, fixed_lr=level > 0 and imp.mode.fixed_lr)


def _row(cfg, ctx, level, kind, model, mask, result, rewind_step, data) -> dict:
    effective, dense = _infer_flops(ctx, model, mask, data.x_train[:1])
    prunable = set(prunable_names(model)) | set(mask)  # a preset's GPT-2 Conv1D weights are not Linear
    all_weights = sum(p.numel() for n, p in model.named_parameters() if n in prunable)
    total_params, nonzero = param_counts(model)
    kept = sum(int(m.sum()) for m in mask.values())
    excluded = all_weights - sum(m.numel() for m in mask.values())
    return {
        "lth/level": level, "lth/kind": kind,
        "lth/percent_remaining": 100.0 * density(mask),  # of the prunable (not excluded) weights
        "lth/percent_remaining_all": 100.0 * (kept + excluded) / all_weights,  # excluded layers counted as kept
        "lth/retrain": cfg.method.retrain if level > 0 else "dense",
        "lth/rewind_step": rewind_step if level > 0 else 0,
        "lth/optimizer_state": cfg.method.optimizer_state, "lth/replay_data_order": cfg.method.replay_data_order,
        "acc/test": result.metrics["acc/test"], "loss/test": result.metrics["loss/test"],
        "acc/val": result.metrics["acc/val"], "acc/test_at_early_stop": result.early_stop.at_best["acc/test"],
        "acc/val_at_early_stop": result.early_stop.at_best["acc/val"], "lth/early_stop_step": result.early_stop.best_step,
        "flops/train_total": result.flops_train, "flops/eval_total": result.flops_eval,
        "flops/train_total_effective": effective_train_flops(model, mask, data.x_train[:2], result.flops_train),
        "flops/infer_per_sample": effective, "flops/infer_per_sample_dense": dense, "flops/convention": CONVENTION,
        "params/total": total_params, "params/nonzero": nonzero, **skipped_row(data),
        **energy_row(result),
    }
