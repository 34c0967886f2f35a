"""leanlab-runs: list, find (by config-hash prefix, by config values) and diff run folders the test writes."""

import json
import subprocess
import sys

import pytest
import yaml

from experiments.runs import diff, find_runs, main, read_run
from tests.helpers import ROOT


def _run(folder, *, hash_, seed, config, overrides, rows=None, status="completed"):
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"experiment": "lth_x", "run_id": "r", "seed": seed,
                                                 "config_hash": hash_}))
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "levels" / "level_00").mkdir(parents=True)
    (folder / "levels" / "level_00" / "config.yaml").write_text("{}")  # not a run folder
    if rows is not None:
        (folder / "summary.json").write_text(json.dumps({"status": status, "records": rows}))


@pytest.fixture
def root(tmp_path):
    base = {"name": "lth_x", "seed": 0, "optim": {"lr": 0.01, "epochs": 2}, "method": {"levels": 2}}
    _run(tmp_path / "a", hash_="abc123456789", seed=0, config=base, overrides=["optim.lr=0.01", "hydra.x=1"],
         rows=[{"acc/test": 0.5}, {"acc/test": 0.75}, {"acc/test": 0.625}])
    _run(tmp_path / "multirun" / "0_seed=1", hash_="abc123456789", seed=1, config=base | {"seed": 1},
         overrides=["seed=1"], rows=[{"acc/test": None, "mse/test": 2.0}], status="failed")
    _run(tmp_path / "b", hash_="def000000000", seed=0, overrides=["optim.lr=0.1", "method.levels=3"],
         config=base | {"optim": {"lr": 0.1, "epochs": 2}, "method": {"levels": 3, "extra": [1, 2]}})
    return tmp_path


def test_list_finds_each_run_folder_once_with_status_hash_overrides_and_headline(root):
    assert [p.relative_to(root).as_posix() for p in find_runs(root)] == ["a", "b", "multirun/0_seed=1"]
    a, b, m = (read_run(p) for p in find_runs(root))
    assert (a.status, a.config_hash, a.seed, a.rows) == ("completed", "abc123456789", 0, 3)
    assert a.headline == {"acc/test": 0.625, "max acc/test": 0.75}
    assert a.overrides == ["optim.lr=0.01"]  # hydra.* overrides left out
    assert (b.status, b.rows, b.headline) == ("unfinished", 0, {})
    assert (m.status, m.headline) == ("failed", {"mse/test": 2.0})


def test_find_by_hash_prefix_and_by_config_value(root, capsys):
    assert main(["find", "abc", str(root), "--json"]) == 0
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(f["seed"] for f in found) == [0, 1]
    assert main(["find", "zzz", str(root)]) == 1
    assert main(["list", str(root), "--where", "optim.lr=0.1", "--json"]) == 0
    assert [json.loads(line)["config_hash"] for line in capsys.readouterr().out.splitlines()] == ["def000000000"]


def test_diff_shows_only_differing_flattened_keys(root):
    assert diff(root / "a", root / "b") == {"optim.lr": (0.01, 0.1), "method.levels": (2, 3),
                                           "method.extra": ("<absent>", [1, 2])}
    assert diff(root / "a", root / "a") == {}


def test_console_entry_point_lists_as_a_table(root):
    proc = subprocess.run([sys.executable, "-m", "experiments.runs", "list", str(root)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["run", "experiment", "status", "config_hash", "seed", "rows", "headline", "overrides"]
    assert lines[1].split()[:7] == ["a", "lth_x", "completed", "abc123456789", "0", "3", "acc/test=0.625"]
    bad = subprocess.run([sys.executable, "-m", "experiments.runs", "list", str(root / "nope")], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "is not a folder" in bad.stderr
