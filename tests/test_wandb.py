"""W&B: one run per unit of work, grouped by the job, with the run folder and the resolved config in its config,
its summary the unit's row, and every run finished (also when the job fails). A fake `wandb` module records the
calls (exact and offline)."""

import sys
import types

import pytest

import experiments.run as runner
from tests.helpers import FAST, compose


class FakeRun:
    def __init__(self, calls, kwargs):
        self.calls, self.kwargs, self.summary, self.history, self.exit_code = calls, kwargs, {}, [], None

    def log(self, row, step=None):
        self.calls.append(("log", self.kwargs["name"]))
        self.history.append(row)

    def finish(self, exit_code=0):
        self.calls.append(("finish", self.kwargs["name"]))
        self.exit_code = exit_code


@pytest.fixture
def fake_wandb(monkeypatch):
    calls, runs = [], []
    module = types.ModuleType("wandb")

    def init(**kwargs):
        calls.append(("init", kwargs["name"]))
        runs.append(FakeRun(calls, kwargs))
        return runs[-1]

    module.init = init
    monkeypatch.setitem(sys.modules, "wandb", module)
    return calls, runs


def test_one_finished_run_per_unit_grouped_by_job(tmp_path, fake_wandb):
    calls, runs = fake_wandb
    cfg = compose([*FAST, "logger=wandb", "method.levels=1", "method.baselines=[random_prune]"])
    rows = runner.run_job(cfg, tmp_path / "job")
    units = ["L00/ticket", "L01/ticket", "L01/random_prune"]
    assert [r.kwargs["name"].split("/", 1)[1] for r in runs] == units
    assert len({r.kwargs["group"] for r in runs}) == 1 and len({r.kwargs["id"] for r in runs}) == 3
    open_run = None
    for kind, name in calls:  # strictly init, logs, finish: no run's history mixes units
        assert (kind == "init") == (open_run is None), calls
        open_run = None if kind == "finish" else name
    assert open_run is None
    for run, row, unit in zip(runs, rows, units):
        assert run.kwargs["config"]["leanlab"]["run_dir"] == str((tmp_path / "job").resolve())
        assert run.kwargs["config"]["optim"]["lr"] == cfg.optim.lr  # the resolved config
        assert run.summary["acc/test"] == row["acc/test"] and run.exit_code == 0
        evals = [h for h in run.history if "loss/val" in h]
        assert evals and all(h["unit"] == unit for h in run.history if "unit" in h)


def test_failed_job_finishes_its_open_run_with_an_error_code(tmp_path, fake_wandb, monkeypatch):
    _, runs = fake_wandb
    import experiments.tasks.lth as lth_task

    real_row = lth_task._row

    def fail_at_level_1(cfg, ctx, level, *args):
        if level == 1:
            raise RuntimeError("boom")
        return real_row(cfg, ctx, level, *args)

    monkeypatch.setattr(lth_task, "_row", fail_at_level_1)
    with pytest.raises(RuntimeError, match="boom"):
        runner.run_job(compose([*FAST, "logger=wandb", "method.levels=1", "method.baselines=[]"]), tmp_path)
    assert [r.exit_code for r in runs] == [0, 1]
