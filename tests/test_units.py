"""run_unit: a unit trains once, leaves result.json and no checkpoint; a rerun returns the stored rows untouched;
a failed unit stays resumable. Splits refuses mismatched splits."""

import json

import pytest
import torch

from experiments.context import RunContext, runtime
from experiments.data import Splits
from experiments.units import run_unit

IDENTITY = {"experiment": "e", "run_id": "r", "seed": 3, "config_hash": "h"}


class Logger:
    def __init__(self) -> None:
        self.logged = []

    def log(self, row, step):
        self.logged.append((row, step))


def ctx(tmp_path) -> RunContext:
    return RunContext(job_dir=tmp_path, meter=None, logger=Logger(), identity=IDENTITY)


@pytest.mark.parametrize("many", [False, True])
def test_a_unit_trains_once_then_returns_its_stored_rows(tmp_path, many):
    unit = tmp_path / "unit"
    unit.mkdir()
    for name in ("checkpoint.pt", "checkpoint.pt.prev", "mask.pt"):
        (unit / name).write_text("x")
    calls = []

    def train():
        calls.append(1)
        rows = [{"acc/test": 0.5, "af/method": "m", "curve": [1]}, {"acc/test": 0.25, "af/method": "n", "curve": []}]
        return rows if many else rows[0]

    first_ctx = ctx(tmp_path)
    first = run_unit(unit, first_ctx, train)
    expected = [{**IDENTITY, **runtime(), "acc/test": 0.5, "af/method": "m", "curve": [1]},
                {**IDENTITY, **runtime(), "acc/test": 0.25, "af/method": "n", "curve": []}]
    assert first == (expected if many else expected[0])
    assert first_ctx.rows == (expected if many else expected[:1])
    assert first_ctx.logger.inner.logged[0] == ({"seed": 3, "runtime/threads": torch.get_num_threads(), "runtime/world_size": 1,
                                                 "acc/test": 0.5},
                                                None)  # numbers only
    stored = json.loads((unit / "result.json").read_text())
    assert stored == ({"rows": expected} if many else {"row": expected[0]})
    assert sorted(p.name for p in unit.iterdir()) == ["mask.pt", "result.json"]

    again_ctx = ctx(tmp_path)
    assert run_unit(unit, again_ctx, train) == first and calls == [1]
    assert again_ctx.rows == first_ctx.rows and again_ctx.logger.inner.logged == []


def test_a_failed_unit_leaves_no_result_and_keeps_its_checkpoint(tmp_path):
    unit = tmp_path / "unit"
    unit.mkdir()
    (unit / "checkpoint.pt").write_text("x")

    def train():
        raise RuntimeError("diverged")

    run_ctx = ctx(tmp_path)
    with pytest.raises(RuntimeError, match="diverged"):
        run_unit(unit, run_ctx, train)
    assert sorted(p.name for p in unit.iterdir()) == ["checkpoint.pt"] and run_ctx.rows == []


def test_splits_refuse_mismatched_rows():
    x, y = torch.zeros(4, 2), torch.zeros(4)
    Splits(x, y, x[:1], y[:1], x[:2], y[:2], {"vocab_size": 5})
    with pytest.raises(ValueError, match="x_val has 1 rows but y_val has 2"):
        Splits(x, y, x[:1], y[:2], x, y)
    with pytest.raises(ValueError, match="training split is empty"):
        Splits(x[:0], y[:0], x, y, x, y)
