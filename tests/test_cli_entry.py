"""Discoverability and safety of the CLI: --help, the installed entry points, the run-folder lock."""

import dataclasses
import json
import os
import socket
import subprocess
import sys

import pytest

from experiments import lock
from experiments.cli_help import render
from experiments.errors import RunFolderError
from meter import MeterConfig
from tests.helpers import CONF, ROOT, run_cli

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "CI": "1"}


def test_help_lists_experiments_groups_and_every_meter_option():
    text = render()
    for path in (CONF / "experiment").glob("*.yaml"):
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(path.stem + " "))
        assert len(line.split(path.stem, 1)[1].strip()) > 20, f"{path.stem} has no description"
    for path in (CONF / "sweep").glob("*.yaml"):
        assert f"  {path.stem} " in text
    assert "base_" not in text  # internal schema entries (base_model, base_chars) are not choices
    assert "lenet_300_100" in text and "debug" in text and "overfit" in text
    for f in dataclasses.fields(MeterConfig):
        assert f"meter.{f.name}=" in text
    assert "4  input error" in text and "2  config error" in text


def test_entry_points_run_from_outside_the_repo(tmp_path):
    """What the `leanlab` / `leanlab-tables` scripts call, imported (not run as __main__) from another folder:
    Hydra then looked up `pkg://conf`, a namespace package under the editable install, and crashed with
    NotADirectoryError."""
    script = ("import sys; from experiments.run import main; "
              "sys.argv = ['leanlab', 'debug=fast', '--cfg', 'job']; main()")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "name: lth_mnist1d" in proc.stdout and "NotADirectoryError" not in proc.stderr
    help_proc = subprocess.run([sys.executable, "-c", script.replace("'debug=fast', '--cfg', 'job'", "'--help'")],
                               cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert help_proc.returncode == 0 and "Experiments (experiment=NAME)" in help_proc.stdout
    tables = subprocess.run([sys.executable, "-c", "import sys; from experiments.tables import main; "
                             "sys.argv = ['leanlab-tables', '--help']; main()"],
                            cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert tables.returncode == 0, tables.stderr
    assert not list(tmp_path.iterdir())  # --cfg and --help create nothing


def test_second_run_into_a_locked_folder_refuses_naming_the_holder(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from experiments.lock import RunLock\n"
         f"with RunLock({str(folder)!r}):\n    print('locked', flush=True); time.sleep(120)"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = run_cli(["debug=fast", f"hydra.run.dir={folder}"], cwd=tmp_path, timeout=300)
        assert proc.returncode == 5
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("run folder error:") and f"pid {holder.pid} on {socket.gethostname()}" in last
        assert sorted(p.name for p in folder.iterdir()) == ["run.lock"]  # nothing else written
        with pytest.raises(RunFolderError, match=f"pid {holder.pid}"):
            lock.RunLock(folder).__enter__()
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / lock.LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                                        "started": "earlier"}))
    with lock.RunLock(tmp_path):
        assert lock.holder(tmp_path)["pid"] == os.getpid()
    assert f"pid {dead.pid}" in caplog.text and "stale" in caplog.text
    assert not (tmp_path / lock.LOCK_NAME).exists()
    (tmp_path / lock.LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": "another-host", "started": "x"}))
    with pytest.raises(RunFolderError, match="another-host"):  # cannot check another host's pid: never taken
        lock.RunLock(tmp_path).__enter__()
