"""Iterative magnitude pruning with rewinding, and its baselines, one row per (level, kind).

Level 0 trains the dense network and snapshots its weights at the rewind iteration k. Each later level prunes the
previous level's trained ticket, rewinds the survivors to their step-k values and retrains from k. At every
level >= 1 the baselines train the same steps: `random_reinit` (same mask, a new seeded initialisation) and
`random_prune` (step-k weights under a random mask with the same per-layer counts).
Finished units leave `result.json`; a rerun in the same folder skips them and resumes the unfinished one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from experiments.checkpoint import load_checkpoint, save_checkpoint
from experiments.context import RunContext
from experiments.records import atomic_write_json, read_json
from experiments.tasks import TASKS
from experiments.trainer import fit, iterations_per_epoch
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
from lth.data import load_dataset
from meter.flops import CONVENTION, param_counts

log = logging.getLogger(__name__)


def _model(cfg, data, init_seed: int):
    torch.manual_seed(init_seed)
    return build_model(cfg.model.name, data.in_features, data.num_classes, hidden=cfg.model.hidden,
                       init=cfg.model.init)


def _infer_flops(ctx: RunContext, model, mask, example: torch.Tensor) -> tuple[int, int]:
    """(effective, dense) FLOPs of one inference; a masked layer's FLOPs scale with its density."""
    count = ctx.flop_cache.get("infer1", model, (example,))
    dense = count.forward
    effective = dense - sum(
        count.by_module_forward[name.rsplit(".", 1)[0]] * (1.0 - d) for name, d in layer_densities(mask).items()
    )
    return int(round(effective)), dense


def _rates(cfg, model) -> PruneRates:
    per_layer = {}
    if cfg.method.output_prune_fraction is not None:
        per_layer[model.output_layer_name()] = cfg.method.output_prune_fraction
    return PruneRates(cfg.method.prune_fraction, per_layer)


def start_state(cfg, data, kind: str, level: int, mask, rewind_file: Path, rewind_step: int):
    """(model with its unit's mask applied, first training step, mask) of one unit of work."""
    if level == 0:
        model, start, unit_mask = _model(cfg, data, cfg.seed), 0, mask
    elif kind == "random_reinit":
        model, start, unit_mask = _model(cfg, data, cfg.seed + 7919 * level), rewind_step, mask
    else:
        model, start, unit_mask = _model(cfg, data, cfg.seed), rewind_step, mask
        model.load_state_dict(load_checkpoint(rewind_file)["model"])
        if kind == "random_prune":
            unit_mask = random_mask_like(mask, torch.Generator().manual_seed(cfg.seed * 104_729 + level))
    apply_mask(model, unit_mask)
    return model, start, unit_mask


@TASKS.register("lth")
def run_imp(cfg, ctx: RunContext) -> list[dict]:
    data = load_dataset(cfg.data.name, num_samples=cfg.data.num_samples, train_split=cfg.data.train_split,
                        val_fraction=cfg.data.val_fraction, seed=cfg.data.generator_seed,
                        split_seed=cfg.data.split_seed)
    spe = iterations_per_epoch(len(data.x_train), cfg.optim.batch_size)
    total = cfg.optim.steps if cfg.optim.steps is not None else cfg.optim.epochs * spe
    rewind_step = RewindPoint.parse(cfg.method.rewind).to_iteration(spe)
    if rewind_step >= total:
        raise ValueError(f"method.rewind={cfg.method.rewind!r} is iteration {rewind_step}, past training end {total}")
    root = ctx.job_dir / "levels"
    rewind_file = root / "rewind_weights.pt"
    example = data.x_train[:1]

    def save_rewind(model, step: int) -> None:
        save_checkpoint(rewind_file, {"model": model.state_dict(), "step": step})

    template = _model(cfg, data, cfg.seed)
    names = template.prunable_names()
    rates = _rates(cfg, template)
    mask = ones_mask(template, names)
    for level in range(cfg.method.levels + 1):
        level_dir = root / f"level_{level:02d}"
        if level > 0:
            mask_file = level_dir / "mask.pt"
            if mask_file.exists():
                mask = load_checkpoint(mask_file)["mask"]
            else:
                trained = _model(cfg, data, cfg.seed)
                trained.load_state_dict(load_checkpoint(root / f"level_{level - 1:02d}" / "ticket" / "final.pt")["model"])
                mask = STRATEGIES.get(cfg.method.strategy)(trained, mask, rates)
                save_checkpoint(mask_file, {"mask": mask})
        kinds = ["ticket"] + (list(cfg.method.baselines) if level > 0 else [])
        for kind in kinds:
            unit_dir = level_dir / kind
            result_file = unit_dir / "result.json"
            if result_file.exists():
                ctx.add_row(read_json(result_file)["row"])
                continue
            unit_dir.mkdir(parents=True, exist_ok=True)
            model, start, unit_mask = start_state(cfg, data, kind, level, mask, rewind_file, rewind_step)
            tag = f"L{level:02d}/{kind}"
            result = fit(
                model, data, cfg.optim, seed=cfg.seed, total_steps=total, start_step=start, mask=unit_mask,
                meter=ctx.meter, logger=ctx.logger, tag=tag, checkpoint_path=unit_dir / "checkpoint.pt",
                snapshot_step=rewind_step if level == 0 else None, on_snapshot=save_rewind,
                progress=ctx.progress, flop_cache=ctx.flop_cache,
            )
            apply_mask(model, unit_mask)
            if kind == "ticket":
                save_checkpoint(unit_dir / "final.pt", {"model": model.state_dict()})
            save_checkpoint(unit_dir / "mask.pt", {"mask": unit_mask})
            effective, dense = _infer_flops(ctx, model, unit_mask, example)
            total_params, nonzero = param_counts(model)
            row = {
                "lth/level": level, "lth/kind": kind, "lth/percent_remaining": 100.0 * density(unit_mask),
                "lth/rewind_step": rewind_step if level > 0 else 0,
                "acc/test": result.metrics["acc/test"], "loss/test": result.metrics["loss/test"],
                "acc/val": result.metrics["acc/val"], "acc/test_at_early_stop": result.early_stop.test_acc,
                "lth/early_stop_step": result.early_stop.best_step,
                "flops/train_total": result.flops_train, "flops/eval_total": result.flops_eval,
                "flops/infer_per_sample": effective, "flops/infer_per_sample_dense": dense,
                "flops/convention": CONVENTION, "params/total": total_params, "params/nonzero": nonzero,
                **result.measurement.row(),
            }
            row = ctx.add_row(row)
            ctx.logger.log({k: v for k, v in row.items() if not isinstance(v, str)}, None)
            atomic_write_json(result_file, {"row": row})
            Path(unit_dir / "checkpoint.pt").unlink(missing_ok=True)
    return ctx.rows
