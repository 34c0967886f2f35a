"""Launchers that start fresh processes (slow: each job pays Python + torch start-up)."""

import json

import pytest

from tests.helpers import FAST, run_cli


@pytest.mark.slow
def test_submitit_local_runs_each_job_in_its_own_process(tmp_path):
    proc = run_cli(["-m", "launcher=submitit_local", *FAST, "method.levels=1", "seed=0,1",
                    "hydra.launcher.timeout_min=10", f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path,
                   timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "sweep").rglob("summary.json")]
    assert sorted(s["records"][0]["seed"] for s in summaries) == [0, 1]
    assert {s["status"] for s in summaries} == {"completed"}
    assert len({s["records"][0]["run_id"] for s in summaries}) == 2
