"""Iterative magnitude pruning with rewinding, and its baselines: one row per (level, kind).

Level 0 trains the dense network and snapshots weights and optimizer state at the rewind iteration k. Each later
level prunes the previous level's trained ticket and retrains the survivors from step k to the end, by the
retraining mode (Renda et al. 2020):
  weight_rewind  weights <- their step-k values (k = 0 is the original lottery ticket); LR schedule replays from k
  lr_rewind      weights <- the previous level's final values; LR schedule replays from k
  finetune       weights <- the previous level's final values; LR fixed at the schedule's final value
Baselines at every level >= 1 train the same steps: `random_reinit` (same mask, new seeded init), `random_prune`
(a random mask of the same density, layer-wise or global), `one_shot` (the dense network pruned once to this
level's density). Finished units leave `result.json`; a rerun in the same folder skips them and resumes the
unfinished one from its checkpoint.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from experiments import distributed
from experiments.callbacks import Snapshot
from experiments.checkpoint import load_checkpoint
from experiments.checkpoint import save_checkpoint as _save_checkpoint
from experiments.context import RunContext
from experiments.optim import lr_factor
from experiments.records import atomic_write_json as _atomic_write_json
from experiments.records import read_json
from experiments.tasks.registry import TASKS
from experiments.trainer import FitSpec, fit, iterations_per_epoch
from lth import (
    STRATEGIES,
    PruneRates,
    RewindPoint,
    apply_mask,
    build_model,
    density,
    layer_densities,
    ones_mask,
    random_mask_like,
)
from lth.connectivity import classification_error, linear_path
from lth.data import load_dataset
from lth.pruning import compound
from meter.flops import CONVENTION, param_counts

log = logging.getLogger(__name__)


def save_checkpoint(path: Path, state: dict) -> None:
    if distributed.is_main():  # every rank computes the same state; rank 0 writes it
        _save_checkpoint(path, state)


def atomic_write_json(path: Path, obj) -> None:
    if distributed.is_main():
        _atomic_write_json(path, obj)


def load_data(cfg):
    return load_dataset(cfg.data.name, **cfg.data.loader_kwargs())


def init_model(cfg, data, init_seed: int):
    """A freshly initialised model of `cfg.model` for `data`, seeded independently of any earlier RNG use."""
    torch.manual_seed(init_seed)
    return build_model(cfg.model.name, data.in_features, data.num_classes, hidden=cfg.model.hidden,
                       init=cfg.model.init)


def prunable(cfg, model) -> list[str]:
    """The model's prunable weights minus those matching `method.exclude` patterns."""
    names = [n for n in model.prunable_names() if not any(fnmatch.fnmatch(n, p) for p in cfg.method.exclude)]
    if not names:
        raise ValueError(f"method.exclude={list(cfg.method.exclude)} excludes every prunable layer")
    return names


def _rates(cfg, model) -> PruneRates:
    per_layer = {}
    if cfg.method.output_prune_fraction is not None:
        per_layer[model.output_layer_name()] = cfg.method.output_prune_fraction
    return PruneRates(cfg.method.prune_fraction, per_layer)


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


def start_state(cfg, data, kind: str, level: int, mask, files: LevelFiles, rewind_step: int):
    """(model with its unit's mask applied, first step, mask, optimizer state or None) of one unit of work."""
    method = cfg.method
    unit_mask, optimizer_state = mask, None
    model = init_model(cfg, data, cfg.seed + (7919 * level if kind == "random_reinit" else 0))
    if level == 0:
        return model, 0, mask, None
    if kind != "random_reinit":
        from_final = method.retrain in ("lr_rewind", "finetune") and kind == "ticket"
        source = files.final(level - 1) if from_final else files.rewind
        model.load_state_dict(load_checkpoint(source)["model"])
    if method.optimizer_state == "rewound" and kind != "random_reinit":
        optimizer_state = load_checkpoint(files.rewind)["optimizer"]
    if kind == "random_prune":
        gen = torch.Generator().manual_seed(cfg.seed * 104_729 + level)
        unit_mask = random_mask_like(mask, gen, method.random_prune_scope)
    elif kind == "one_shot":
        dense = init_model(cfg, data, cfg.seed)
        dense.load_state_dict(load_checkpoint(files.final(0))["model"])
        unit_mask = STRATEGIES.get(method.strategy)(dense, ones_mask(dense, list(mask)),
                                                    compound(_rates(cfg, dense), level))
    apply_mask(model, unit_mask)
    return model, rewind_step, unit_mask, optimizer_state


def _mask_for_level(cfg, data, level: int, previous, rates, files: LevelFiles):
    mask_file = files.level(level) / "mask.pt"
    if mask_file.exists():
        return load_checkpoint(mask_file)["mask"]
    trained = init_model(cfg, data, cfg.seed)
    trained.load_state_dict(load_checkpoint(files.final(level - 1))["model"])
    mask = STRATEGIES.get(cfg.method.strategy)(trained, previous, rates)
    save_checkpoint(mask_file, {"mask": mask})
    distributed.barrier()
    return mask


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
               *, on_snapshot=None, extra: dict | None = None, data_seed: int | None = None, post=None) -> dict:
    """Train one (level, kind) unless `unit_dir/result.json` exists; returns its row.

    `start_fn()` -> (model with mask applied, first step, mask, optimizer state or None), called only when the
    unit must be trained; `post(model) -> dict` adds fields computed from the trained model to its row.
    """
    if (unit_dir / "result.json").exists():
        return ctx.add_row(read_json(unit_dir / "result.json")["row"])
    unit_dir.mkdir(parents=True, exist_ok=True)
    model, start, unit_mask, opt_state = start_fn()
    finetune = level > 0 and cfg.method.retrain == "finetune"
    if data_seed is None:
        data_seed = cfg.seed if cfg.method.replay_data_order else cfg.seed + 31 * level
    result = fit(model, data, cfg.optim, FitSpec(
        total_steps=sched.total, seed=data_seed, tag=f"L{level:02d}/{kind}", start_step=start,
        checkpoint_path=unit_dir / "checkpoint.pt", mask=unit_mask, optimizer_state=opt_state,
        lr_at=(lambda s: sched.final_lr) if finetune else None,
    ), ctx, callbacks=[Snapshot(sched.rewind_step, on_snapshot)] if on_snapshot else [])
    apply_mask(model, unit_mask)
    if kind == "ticket":
        save_checkpoint(unit_dir / "final.pt", {"model": model.state_dict()})
    save_checkpoint(unit_dir / "mask.pt", {"mask": unit_mask})
    row = ctx.add_row({**_row(cfg, ctx, level, kind, model, unit_mask, result, sched.rewind_step, data),
                       **(extra or {}), **(post(model) if post else {})})
    ctx.logger.log({k: v for k, v in row.items() if not isinstance(v, str)}, None)
    atomic_write_json(unit_dir / "result.json", {"row": row})
    distributed.barrier()  # files rank 0 wrote exist before any rank reads them
    if distributed.is_main():
        for leftover in ("checkpoint.pt", "checkpoint.pt.prev"):
            (unit_dir / leftover).unlink(missing_ok=True)
    return row


@TASKS.register("lth")
def run_imp(cfg, ctx: RunContext) -> list[dict]:
    data = load_data(cfg)
    sched = schedule(cfg, data)
    files = LevelFiles(ctx.job_dir)

    def save_rewind(model, optimizer, step: int) -> None:
        save_checkpoint(files.rewind, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                       "step": step})

    template = init_model(cfg, data, cfg.seed)
    rates = _rates(cfg, template)
    mask = ones_mask(template, prunable(cfg, template))
    for level in range(cfg.method.levels + 1):
        if level > 0:
            mask = _mask_for_level(cfg, data, level, mask, rates, files)
        for kind in ["ticket"] + (list(cfg.method.baselines) if level > 0 else []):
            train_unit(cfg, ctx, data, sched, files.level(level) / kind, level, kind,
                       lambda: start_state(cfg, data, kind, level, mask, files, sched.rewind_step),  # noqa: B023
                       on_snapshot=save_rewind if level == 0 else None)
        if cfg.method.stability:
            stability_twin(cfg, ctx, data, sched, files, level, mask)
    return ctx.rows


def stability_twin(cfg, ctx: RunContext, data, sched: Schedule, files: LevelFiles, level: int, mask) -> dict:
    """Linear mode connectivity (Frankle et al. 2020): a second copy of this level's ticket trained from the same
    rewound state (step k) with another data order; its row carries the error barrier between the two."""

    def start():
        model, _, unit_mask, opt_state = start_state(cfg, data, "ticket", max(level, 1), mask, files,
                                                     sched.rewind_step)
        if level == 0:  # the dense network rewound to step k: Frankle et al.'s instability analysis
            model.load_state_dict(load_checkpoint(files.rewind)["model"])
        return model, sched.rewind_step, unit_mask, opt_state

    def barrier(twin) -> dict:
        ticket = load_checkpoint(files.level(level) / "ticket" / "final.pt")["model"]
        path = linear_path(ticket, twin.state_dict(), classification_error(twin, data.x_test, data.y_test),
                           num_points=cfg.method.stability_points)
        return {"lth/lmc_barrier": path.barrier, "lth/lmc_stable": path.is_stable(),
                "lth/lmc_max_error": max(path.errors)}

    return train_unit(cfg, ctx, data, sched, files.level(level) / "stability_twin", level, "stability_twin", start,
                      data_seed=cfg.seed + 1_000_003, post=barrier)


def _row(cfg, ctx, level, kind, model, mask, result, rewind_step, data) -> dict:
    effective, dense = _infer_flops(ctx, model, mask, data.x_train[:1])
    all_weights = sum(p.numel() for n, p in model.named_parameters() if n in model.prunable_names())
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
        "flops/infer_per_sample": effective, "flops/infer_per_sample_dense": dense, "flops/convention": CONVENTION,
        "params/total": total_params, "params/nonzero": nonzero,
        **result.measurement.row(),
    }
