"""Tables never pool or pair runs of different configurations silently: a config key older runs lack takes the
schema's default for them (the caption names them); OFA tables pair within one configuration and seed, and two
jobs claiming one slot are an error naming both folders."""

from __future__ import annotations

import csv

import pytest

from experiments.tables import main
from tests.table_fixtures import lth_config, write_job


def _csv(path) -> list[dict]:
    return list(csv.DictReader(path.read_text().splitlines()))


def _lth_job(root, name, seed, acc, **method):
    row = {"lth/level": 1, "lth/kind": "ticket", "lth/percent_remaining": 80.0, "acc/test": acc, "seed": seed}
    write_job(root / name, [row], lth_config(seed, **method))


def test_a_key_older_runs_lack_takes_the_schema_default_not_a_wildcard(tmp_path):
    _lth_job(tmp_path, "old0", 0, 0.5)  # before method.optimizer_state existed
    _lth_job(tmp_path, "old1", 1, 0.6)
    _lth_job(tmp_path, "new0", 0, 0.8, optimizer_state="rewound")
    _lth_job(tmp_path, "new1", 1, 0.9, optimizer_state="rewound")
    out = tmp_path / "out"
    assert main(["lth_mnist1d_curve", "--runs", str(tmp_path), "--out", str(out)]) == 0
    rows = _csv(out / "table.csv")
    assert sorted((r["method.optimizer_state"], r["runs"], round(float(r["acc/test/mean"]), 9)) for r in rows) == [
        ("fresh", "2", 0.55), ("rewound", "2", 0.85)]  # not one row of 4
    text = (out / "caption.txt").read_text()
    assert "predate a config key ran with its schema default: method.optimizer_state='fresh' (2 jobs: old0, old1)" \
        in text


def test_old_runs_at_the_default_pool_with_new_runs_that_chose_it(tmp_path):
    _lth_job(tmp_path, "old0", 0, 0.5)
    _lth_job(tmp_path, "new1", 1, 0.6, optimizer_state="fresh")
    out = tmp_path / "out"
    assert main(["lth_mnist1d_curve", "--runs", str(tmp_path), "--out", str(out)]) == 0
    (row,) = _csv(out / "table.csv")
    assert row["runs"] == "2"


def test_a_key_without_a_schema_default_splits_the_rows(tmp_path):
    _lth_job(tmp_path, "a", 0, 0.5)
    _lth_job(tmp_path, "b", 1, 0.7, not_a_schema_key=3)
    out = tmp_path / "out"
    assert main(["lth_mnist1d_curve", "--runs", str(tmp_path), "--out", str(out)]) == 0
    assert sorted(r["method.not_a_schema_key"] for r in _csv(out / "table.csv")) == ["(absent)", "3"]
