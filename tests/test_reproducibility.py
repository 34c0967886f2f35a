"""Results do not depend on the launcher: the thread count comes from config (`threads`) and every row records it
with the torch version."""

import json
import os
import subprocess
import sys

import pytest
import torch

import experiments.run as runner
from tests.helpers import FAST, ROOT, compose

# Big enough that a matmul split over 2 threads adds in another order (seen: loss/test of L02/ticket differs).
JOB = [*FAST, "data.num_samples=2000", "optim.epochs=4", "optim.eval_every=7"]


def test_config_threads_are_set_and_recorded_in_every_row(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rows = runner.run_job(compose([*FAST, "method.levels=1", "method.baselines=[]"]), tmp_path)
        assert torch.get_num_threads() == 1  # the default `threads: 1`
    finally:
        torch.set_num_threads(before)
    assert {(r["runtime/threads"], r["runtime/torch"]) for r in rows} == {(1, torch.__version__)}


@pytest.mark.slow
def test_basic_and_joblib_launchers_give_identical_rows(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "CI": "1"}
    env.pop("OMP_NUM_THREADS", None)  # each launcher's own default thread count, as a user gets it
    common = dict(cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    cmd = [sys.executable, "-m", "experiments.run"]
    procs = [subprocess.Popen([*cmd, *JOB, f"hydra.run.dir={tmp_path / 'basic'}"], **common),
             subprocess.Popen([*cmd, "-m", "launcher=joblib", *JOB, "seed=0", f"hydra.sweep.dir={tmp_path / 'jl'}"],
                              **common)]
    for proc in procs:
        assert proc.wait(timeout=600) == 0, proc.stderr.read()[-3000:]
    basic = json.loads((tmp_path / "basic" / "summary.json").read_text())["records"]
    (joblib_summary,) = (tmp_path / "jl").rglob("summary.json")
    joblib = json.loads(joblib_summary.read_text())["records"]
    keys = ("lth/level", "lth/kind", "acc/test", "loss/test", "acc/val", "runtime/threads", "config_hash")
    assert [[r[k] for k in keys] for r in basic] == [[r[k] for k in keys] for r in joblib]
