"""The CLI end to end, in subprocesses: run record, bad input, kill + resume, multirun."""

import csv
import json
import signal
import subprocess
import sys
import time

import pytest

from experiments.records import check_rows
from tests.helpers import FAST, ROOT, run_cli


def test_run_writes_complete_record(tmp_path):
    out = tmp_path / "run"
    proc = run_cli([*FAST, f"hydra.run.dir={out}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["error"] is None
    rows = summary["records"]
    check_rows(rows)
    assert len(rows) == 1 + 2 * 3  # dense level + 2 levels x (ticket, random_reinit, random_prune)
    for row in rows:
        assert row["flops/infer_per_sample"] <= row["flops/infer_per_sample_dense"]
        assert row["params/nonzero"] < row["params/total"] or row["lth/level"] == 0
    assert {r["config_hash"] for r in rows} == {rows[0]["config_hash"]}
    with open(out / "energy.csv") as f:
        header = next(csv.reader(f))
    assert [h.strip() for h in header][:5] == ["t_unix", "window", "joules_cumulative", "watts", "source"]
    assert (out / "metrics.jsonl").read_text().count("\n") > 0
    assert (out / "config.yaml").exists()
    assert "run folder" in proc.stdout and "% weights" in proc.stdout


@pytest.mark.slow  # long subprocess runs; the default suite keeps a shorter case of the same path
def test_bad_override_exits_nonzero_naming_the_key(tmp_path):
    for override, needle in [("method.prune_fraction=1.5", "method.prune_fraction"),
                             ("model.widht=3", "widht"), ("model=nope", "model='nope'"),
                             ("optim.lr=abc", "optim.lr")]:
        proc = run_cli([*FAST, override, f"hydra.run.dir={tmp_path / 'bad'}"], cwd=tmp_path, timeout=120)
        assert proc.returncode != 0, override
        assert needle in proc.stderr, (override, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
    summary = tmp_path / "bad" / "summary.json"
    if summary.exists():  # a run that failed validation never claims completion
        assert json.loads(summary.read_text())["status"] == "failed"


def test_sigkill_mid_level_then_rerun_skips_finished_levels(tmp_path):
    out = tmp_path / "run"
    args = ["debug=fast", "progress=false", "method.levels=3", "optim.epochs=6", f"hydra.run.dir={out}"]
    env_args = {"PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "CI": "1"}
    import os

    proc = subprocess.Popen([sys.executable, "-m", "experiments.run", *args], cwd=tmp_path,
                            env={**os.environ, **env_args}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "levels" / "level_01" / "ticket" / "result.json"
    deadline = time.time() + 240
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists(), "the run never finished level 1's ticket"
    assert not (out / "summary.json").exists()  # a killed run does not look complete
    finished = {p: p.stat().st_mtime_ns for p in (out / "levels").rglob("result.json")}
    rerun = run_cli(args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was redone"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    units = {(r["lth/level"], r["lth/kind"]) for r in summary["records"]}
    assert len(units) == len(summary["records"]) == 1 + 3 * 3


def test_multirun_with_a_bad_value_is_refused_before_any_job_runs(tmp_path):
    proc = run_cli(["-m", *FAST, "method.levels=1", "method.prune_fraction=0.2,1.5",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("config error: method.prune_fraction=1.5")
    assert not (tmp_path / "sweep").exists()  # every job's config is checked before the first one starts


def test_multirun_joblib_runs_every_seed(tmp_path):
    proc = run_cli(["-m", "launcher=joblib", *FAST, "method.levels=1", "seed=0,1",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "sweep").rglob("summary.json")]
    assert sorted(s["records"][0]["seed"] for s in summaries) == [0, 1]
    assert all(s["status"] == "completed" for s in summaries)
    # Different seeds, same hyperparameters: one config hash, different weights and results.
    assert len({s["config_hash"] for s in summaries}) == 1
