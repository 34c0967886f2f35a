"""Faults and bad input: each injected fault and what the run must do."""

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import experiments.checkpoint as ckpt
import experiments.run as runner
from tests.helpers import FAST, ROOT, compose, run_cli


def test_truncated_checkpoint_falls_back_to_previous_naming_the_file(tmp_path, caplog):
    path = tmp_path / "checkpoint.pt"
    ckpt.save_checkpoint(path, {"step": 1, "w": torch.ones(3)})
    ckpt.save_checkpoint(path, {"step": 2, "w": torch.ones(3)})
    assert ckpt.load_latest(path)["step"] == 2
    path.write_bytes(path.read_bytes()[:20])  # truncated
    with caplog.at_level(logging.ERROR):
        assert ckpt.load_latest(path)["step"] == 1
    assert str(path) in caplog.text
    ckpt.previous(path).write_bytes(b"garbage")
    with pytest.raises(ckpt.CheckpointError, match="checkpoint.pt"):
        ckpt.load_latest(path)


class Payload:
    def __reduce__(self):  # what a malicious checkpoint would do on load
        return (os.system, ("echo pwned",))


def test_checkpoint_with_pickled_object_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"payload": Payload()}, path)  # an arbitrary class instance, not tensors/containers
    with pytest.raises(ckpt.CheckpointError, match="evil.pt"):
        ckpt.load_checkpoint(path)


def test_disk_full_while_checkpointing_fails_the_run_and_claims_nothing(tmp_path, monkeypatch):
    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ckpt, "atomic_write_bytes", full)
    with pytest.raises(runner.RunFolderError, match="No space left"):
        runner.run_job(compose([*FAST, "method.levels=1"]), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "No space left" in summary["error"]


def test_wandb_init_failure_warns_and_run_completes(tmp_path, monkeypatch, caplog):
    wandb = pytest.importorskip("wandb")

    def broken(*args, **kwargs):
        raise ConnectionError("W&B unreachable")

    monkeypatch.setattr(wandb, "init", broken)
    with caplog.at_level(logging.WARNING):
        runner.run_job(compose([*FAST, "logger=wandb", "method.levels=1", "method.baselines=[]"]), tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "completed"
    assert caplog.text.count("W&B disabled") == 1


def test_exploding_loss_fails_with_step_and_value(tmp_path):
    cfg = compose([*FAST, "optim=sgd", "optim.lr=1e12", "optim.momentum=0.0", "method.levels=1"])
    with pytest.raises(Exception, match="training loss is (nan|inf) at step"):
        runner.run_job(cfg, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "NonFiniteLossError" in summary["error"] and "at step" in summary["error"]


def test_folder_of_another_config_is_refused(tmp_path):
    runner.run_job(compose([*FAST, "method.levels=0"]), tmp_path)
    with pytest.raises(runner.RunFolderError, match="holds a run of config_hash"):
        runner.run_job(compose([*FAST, "method.levels=0", "optim.lr=0.5"]), tmp_path)


ARGS = ["debug=fast", "progress=false", "method.levels=2", "optim.epochs=4", "optim.eval_every=2"]
DETERMINISTIC = ("acc/test", "loss/test", "acc/test_at_early_stop", "lth/early_stop_step", "flops/train_total",
                 "flops/infer_per_sample", "params/nonzero", "lth/percent_remaining")


def _start(out):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "CI": "1"}
    return subprocess.Popen([sys.executable, "-m", "experiments.run", *ARGS, f"hydra.run.dir={out}"],
                            env=env, cwd=out.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _lines(path):
    return path.read_text().count("\n") if path.exists() else 0


def _wait_lines(proc, path, n, deadline=120):
    end = time.time() + deadline
    while _lines(path) < n and proc.poll() is None and time.time() < end:
        time.sleep(0.01)


@pytest.mark.slow  # long subprocess runs; the default suite keeps a shorter case of the same path
def test_sigkill_at_several_points_resumes_bit_identical(tmp_path):
    ref = tmp_path / "ref"
    assert run_cli([*ARGS, f"hydra.run.dir={ref}"], cwd=tmp_path).returncode == 0
    out = tmp_path / "killed"
    for n_lines in (3, 9, 15):  # kill once metrics.jsonl has this many rows: inside level 0, 1 and 2
        proc = _start(out)
        _wait_lines(proc, out / "metrics.jsonl", n_lines)
        proc.kill()
        proc.wait()
    rerun = run_cli([*ARGS, f"hydra.run.dir={out}"], cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    a = json.loads((ref / "summary.json").read_text())["records"]
    b = json.loads((out / "summary.json").read_text())["records"]
    assert [[r[k] for k in DETERMINISTIC] for r in a] == [[r[k] for k in DETERMINISTIC] for r in b]
    for final in sorted((ref / "levels").rglob("final.pt")):
        x, y = ckpt.load_checkpoint(final)["model"], ckpt.load_checkpoint(out / final.relative_to(ref))["model"]
        assert all(torch.equal(x[k], y[k]) for k in x), final
    # Each evaluation step logged once: the rows after a checkpoint were dropped on resume, then relogged.
    steps = [(r.get("unit"), r["step"]) for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
             if "unit" in r]
    assert len(steps) == len(set(steps))


@pytest.mark.slow  # long subprocess runs; the default suite keeps a shorter case of the same path
def test_sigterm_checkpoints_exits_for_requeue_and_resumes(tmp_path):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_lines(proc, out / "metrics.jsonl", 4)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)  # Hydra's console log handler writes to stdout
    assert proc.returncode == 3, output
    assert "preempted by SIGTERM" in output
    assert not (out / "summary.json").exists()
    assert list((out / "levels").rglob("checkpoint.pt"))
    rerun = run_cli([*ARGS, f"hydra.run.dir={out}"], cwd=tmp_path)
    assert rerun.returncode == 0 and json.loads((out / "summary.json").read_text())["status"] == "completed"
