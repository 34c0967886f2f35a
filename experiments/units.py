"""`run_unit`: run one unit of work (one trained model, one IMP level) once, whatever number of restarts.

A unit folder is either resumable (an epoch checkpoint, no result) or finished (`result.json`, no checkpoint).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from experiments import distributed
from experiments.checkpoint import previous
from experiments.context import RunContext
from experiments.records import atomic_write_json, read_json

Rows = dict | list[dict]


def _loggable(row: dict) -> dict:
    return {k: v for k, v in row.items() if isinstance(v, (int, float))}


def run_unit(unit_dir: Path, ctx: RunContext, train: Callable[[], Rows], checkpoint: str = "checkpoint.pt") -> Rows:
    """The row (or rows) of the unit in `unit_dir`: stored ones when `unit_dir/result.json` exists, else `train()`'s.

    Finished unit: `train` is not called; the stored rows go back into the run (`ctx.add_row`) and are returned.
    Otherwise `train()` returns the unit's row dict (or a list of them) without identity keys, and each row is
    added to the run (`ctx.add_row` prefixes experiment/run_id/seed/config_hash) and logged (its int and float
    values, step None); rank 0 writes `result.json` atomically (`{"row": row}` or `{"rows": [...]}`), every rank
    waits for it, and rank 0 deletes the unit's epoch checkpoint `<checkpoint>` and its `.prev`.

    Moving a task onto it (e.g. tasks/lth.py `train_unit`): put everything from `unit_dir.mkdir(...)` up to the
    row dict into a `train()` closure that returns the dict before `ctx.add_row`, keep the files the unit must
    leave (final.pt, mask.pt) inside it, and `return run_unit(unit_dir, ctx, train)`.
    """
    result = Path(unit_dir) / "result.json"
    if result.exists():
        stored = read_json(result)
        if "rows" in stored:
            return [ctx.add_row(r) for r in stored["rows"]]
        return ctx.add_row(stored["row"])
    Path(unit_dir).mkdir(parents=True, exist_ok=True)
    trained = train()
    rows = [ctx.add_row(r) for r in (trained if isinstance(trained, list) else [trained])]
    for row in rows:
        ctx.logger.log(_loggable(row), None)
    if distributed.is_main():
        atomic_write_json(result, {"rows": rows} if isinstance(trained, list) else {"row": rows[0]})
    distributed.barrier()  # the result exists before any rank looks for it
    if distributed.is_main():
        for leftover in (Path(unit_dir) / checkpoint, previous(Path(unit_dir) / checkpoint)):
            leftover.unlink(missing_ok=True)
    return rows if isinstance(trained, list) else rows[0]
