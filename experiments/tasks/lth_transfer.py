"""Ticket transfer (Morcos et al. 2019): find tickets by IMP on a source dataset, then train each level's mask with
the source's rewound weights on the target dataset (`data`), beside the same mask with a fresh initialisation.

The source IMP run lives in `<job>/source/` (resumable like any IMP run); transfer units in `<job>/transfer/`.
Rows carry `lth/phase` = source | transfer. Source and target must share input and output sizes.
"""

from __future__ import annotations

import dataclasses

from experiments.checkpoint import load_checkpoint
from experiments.context import RunContext
from experiments.tasks.lth import LevelFiles, imp_task, init_model, load_data, schedule, train_unit
from experiments.tasks.registry import TASKS
from lth import apply_mask, ones_mask, prunable_names


@TASKS.register("lth_transfer")
def run_transfer(cfg, ctx: RunContext) -> list[dict]:
    source_cfg = dataclasses.replace(cfg, data=cfg.method.source)
    source_ctx = dataclasses.replace(ctx, job_dir=ctx.job_dir / "source", rows=[])
    source_rows = imp_task(source_cfg, source_ctx)
    for row in source_rows:
        ctx.add_row({**row, "lth/phase": "source"})
    source_files = LevelFiles(ctx.job_dir / "source")
    target = load_data(cfg)
    source_data = load_data(source_cfg)
    if target.in_features != source_data.in_features or target.num_classes != source_data.num_classes:
        raise ValueError(f"target data ({target.in_features} features, {target.num_classes} classes) does not "
                         f"match the source ({source_data.in_features}, {source_data.num_classes})")
    sched = schedule(cfg, target)
    source_rewind = schedule(source_cfg, source_data).rewind_step
    out = LevelFiles(ctx.job_dir / "transfer")
    for level in range(cfg.method.levels + 1):
        if level == 0:
            template = init_model(cfg, target, cfg.seed)
            mask = ones_mask(template, prunable_names(template, exclude=cfg.method.exclude))
        else:
            mask = load_checkpoint(source_files.level(level) / "mask.pt")["mask"]

        def ticket(mask=mask):
            model = init_model(cfg, target, cfg.seed)
            model.load_state_dict(load_checkpoint(source_files.rewind)["model"])
            apply_mask(model, mask)
            return model, source_rewind, mask, None

        def reinit(mask=mask, level=level):
            model = init_model(cfg, target, cfg.seed + 7919 * (level + 1))
            apply_mask(model, mask)
            return model, source_rewind, mask, None

        for kind, start in (("ticket", ticket), ("random_reinit", reinit)):
            train_unit(cfg, ctx, target, dataclasses.replace(sched, rewind_step=source_rewind),
                       out.level(level) / kind, level, kind, start, extra={"lth/phase": "transfer"})
    return ctx.rows
