"""Progress: one line per epoch in a log file (no carriage-return frames), a bar only on a terminal, and the
job's unit count for the main job equal to the rows it writes."""

import io

import pytest
import torch
from omegaconf import OmegaConf

import experiments.run as runner
from experiments.config import OptimCfg
from experiments.data import Splits
from experiments.loggers import NullLogger
from experiments.progress import JobProgress
from experiments.trainer import fit
from lth import build_model
from meter import Meter, MeterConfig
from tests.helpers import FAST, compose

pytestmark = pytest.mark.usefixtures("one_thread")


class Terminal(io.StringIO):
    def isatty(self):
        return True


def _train(progress, epochs=3):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 20, generator=g)
    data = Splits(x[:160], x[:160, :4].argmax(1), x[160:], x[160:, :4].argmax(1), x[:0], x[:0, 0].long())
    model = build_model("mlp", 20, 4, hidden=[8])
    optim = OptimCfg(name="sgd", lr=0.1, batch_size=40, epochs=epochs)
    with Meter(MeterConfig(enabled=False), out_dir=None) as meter:
        fit(model, data, optim, seed=0, total_steps=4 * epochs, meter=meter, logger=NullLogger(), tag="L01/ticket",
            progress=progress)


def test_log_file_gets_one_line_per_epoch_with_the_job_progress():
    out = io.StringIO()
    job = JobProgress(units_total=4, stream=out)
    job.unit_done()  # one unit finished before this one
    _train(job)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [line.split(" step")[0] for line in lines] == [f"L01/ticket epoch {e}/3" for e in (1, 2, 3)]
    assert all("unit 2/4" in line for line in lines)
    assert [line.split("job ")[1][:3] for line in lines] == ["33%", "42%", "50%"]  # (1 + epoch/3) / 4


def test_terminal_gets_a_bar_and_no_epoch_lines():
    out = Terminal()
    _train(JobProgress(units_total=1, stream=out))
    assert "\r" in out.getvalue() and "epoch" not in out.getvalue()


def test_disabled_progress_writes_nothing():
    out = Terminal()
    _train(JobProgress(enabled=False, units_total=1, stream=out))
    assert out.getvalue() == ""


@pytest.mark.parametrize("method", [{"baselines": ["one_shot"], "stability": True}])
def test_main_job_unit_count_equals_its_rows(tmp_path, method, monkeypatch):
    cfg = compose([*FAST, "method.levels=1"])
    cfg = OmegaConf.merge(cfg, {"method": method})
    seen = {}
    real = JobProgress.for_config

    def spy(typed):
        seen["job"] = real(typed)
        return seen["job"]

    monkeypatch.setattr(runner.JobProgress, "for_config", spy)
    rows = runner.run_job(cfg, tmp_path)
    assert seen["job"].units_total == seen["job"].units_done == len(rows)
    assert seen["job"].summary(0.0).startswith(f"unit {len(rows)}/{len(rows)} (levels 0-1), job 100%")
