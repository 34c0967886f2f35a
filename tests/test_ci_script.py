"""`.ci/run` runs the fast suite, then the slow one; either failing, or collecting no tests (pytest exit 5), fails CI.

The script runs against a stand-in `python` on PATH that logs its arguments and answers with a chosen exit code,
so the test checks the script's logic without running any suite.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

CI_SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "run"

FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
case "$*" in
  *"-m pip"*) exit 0 ;;
  *"-m slow"*) exit "$SLOW_RC" ;;
  *) exit "$FAST_RC" ;;
esac
"""


def _run_ci(tmp_path: Path, fast_rc: int, slow_rc: int) -> tuple[int, list[str]]:
    (tmp_path / ".ci").mkdir()
    shutil.copy(CI_SCRIPT, tmp_path / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    calls = tmp_path / "calls.txt"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CALLS": str(calls),
           "FAST_RC": str(fast_rc), "SLOW_RC": str(slow_rc)}
    proc = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], env=env, capture_output=True, text=True)
    lines = calls.read_text().splitlines() if calls.exists() else []
    return proc.returncode, [line for line in lines if "pytest" in line]


def test_ci_runs_the_fast_suite_then_the_slow_suite(tmp_path):
    rc, pytest_calls = _run_ci(tmp_path, 0, 0)
    assert rc == 0
    assert pytest_calls == ["-m pytest", "-m pytest -m slow"]


@pytest.mark.parametrize(("fast_rc", "slow_rc", "want_rc", "want_calls"), [
    (1, 0, 1, 1),  # fast suite fails: CI fails, slow suite not run
    (5, 0, 1, 1),  # fast suite collected nothing: a failure
    (0, 1, 1, 2),  # slow suite fails (e.g. exact resume broken)
    (0, 5, 1, 2),  # slow suite collected nothing (marker renamed): a failure, not a pass
    (0, 2, 2, 2),  # other codes pass through
])
def test_ci_fails_when_either_suite_fails_or_collects_nothing(tmp_path, fast_rc, slow_rc, want_rc, want_calls):
    rc, pytest_calls = _run_ci(tmp_path, fast_rc, slow_rc)
    assert rc == want_rc
    assert len(pytest_calls) == want_calls
