"""W&B offline: an offline run folder appears and the in-process run.summary agrees with summary.json."""

import json

import pytest

from tests.helpers import FAST, compose

pytest.importorskip("wandb")


def test_offline_wandb_run_matches_summary(tmp_path, monkeypatch):
    import experiments.run as runner
    from experiments.loggers import build_logger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    captured = {}

    def capture(*args, **kwargs):
        logger = captured["logger"] = build_logger(*args, **kwargs)
        finish = logger.finish

        def finish_after_reading_summary(status):  # in-process run.summary, read before the run closes
            captured["summary"] = {k: logger.run.summary[k] for k in logger.run.summary.keys()}
            finish(status)

        logger.finish = finish_after_reading_summary
        return logger

    monkeypatch.setattr(runner, "build_logger", capture)
    cfg = compose([*FAST, "logger=wandb", "method.levels=1", "method.baselines=[]"])
    rows = runner.run_job(cfg, tmp_path)
    run = captured["logger"].run
    assert run is not None
    assert list((tmp_path / "wandb").glob("offline-run-*")), "no offline run folder"
    summary = json.loads((tmp_path / "summary.json").read_text())
    last = summary["records"][-1]
    assert summary["records"] == rows  # summary.json holds every row the task returned, as returned
    for key in ("acc/test", "flops/infer_per_sample", "energy/joules", "params/nonzero"):
        assert captured["summary"][key] == pytest.approx(last[key]), key
