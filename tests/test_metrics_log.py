"""metrics.jsonl: training-loss rows every `log_every` steps, and after a kill between an evaluation's log row and
its checkpoint, a resumed run logs each evaluation exactly once: the same rows as an uninterrupted run."""

import json
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from experiments.config import OptimCfg
from experiments.data import Splits
from experiments.loggers import LocalLogger
from experiments.trainer import FitSpec, Services, fit
from lth import build_model
from meter import Meter, MeterConfig

pytestmark = pytest.mark.usefixtures("one_thread")
OPTIM = OptimCfg(name="sgd", lr=0.05, momentum=0.9, batch_size=20, epochs=3, eval_every=4)  # 8 steps/epoch


class Kill(BaseException):
    pass


class KilledAfterLogging(LocalLogger):
    """Writes the row, then dies (as a SIGKILL would, before the checkpoint that follows it)."""

    def __init__(self, job_dir, kill_at: int) -> None:
        super().__init__(job_dir, SimpleNamespace(log_every=3), OmegaConf.create({}), None)
        self.kill_at = kill_at

    def log(self, row, step=None):
        super().log(row, step)
        if step == self.kill_at and "loss/val" in row:
            raise Kill


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(240, 40, generator=g)
    y = x[:, :10].argmax(1)
    return Splits(x[:160], y[:160], x[160:200], y[160:200], x[200:], y[200:])


def _fit(job_dir, logger, tag="L00/ticket"):
    torch.manual_seed(0)
    model = build_model("mlp", 40, 10, hidden=[32])
    with Meter(MeterConfig(enabled=False), out_dir=None) as meter:
        fit(model, _data(), OPTIM, FitSpec(total_steps=24, seed=1, tag=tag, checkpoint_path=job_dir / "ckpt.pt"),
            Services(meter=meter, logger=logger, progress=False))
    logger.finish("completed")
    return [json.loads(line) for line in (job_dir / "metrics.jsonl").read_text().splitlines()]


def _steps(rows, key):
    return [r["step"] for r in rows if key in r]


@pytest.mark.parametrize("kill_at", [8, 16, 12])  # end of epoch 1 (no checkpoint yet), of epoch 2, mid-epoch 2
def test_kill_between_eval_log_and_checkpoint_logs_each_evaluation_once(tmp_path, kill_at):
    (tmp_path / "ref").mkdir()
    reference = _fit(tmp_path / "ref", LocalLogger(tmp_path / "ref", SimpleNamespace(log_every=3), None, None))
    assert _steps(reference, "loss/val") == [4, 8, 12, 16, 20, 24]
    assert _steps(reference, "loss/train") == [3, 6, 9, 12, 15, 18, 21, 24]
    job = tmp_path / "job"
    job.mkdir()
    (job / "metrics.jsonl").write_text('{"unit": "earlier", "step": 5}\n')  # another unit's row stays
    with pytest.raises(Kill):
        _fit(job, KilledAfterLogging(job, kill_at))
    resumed = _fit(job, LocalLogger(job, SimpleNamespace(log_every=3), None, None))
    assert resumed[0] == {"unit": "earlier", "step": 5}
    assert resumed[1:] == reference  # every evaluation and training-loss row once, with identical values


def test_torn_last_line_of_an_unfinished_unit_is_dropped(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"unit": "a", "step": 1}\n{"unit": "b", "step": 2}\n{"unit": "b", "st')
    logger = LocalLogger(tmp_path, SimpleNamespace(log_every=0), None, None)
    logger.start_unit("b", None)
    logger.finish("completed")
    assert (tmp_path / "metrics.jsonl").read_text() == '{"unit": "a", "step": 1}\n'
