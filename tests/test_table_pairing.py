"""Tables never pool or pair runs of different configurations silently: a config key older runs lack takes the
schema's default for them (the caption names them); OFA tables pair within one configuration and seed, and two
jobs claiming one slot are an error naming both folders."""

from __future__ import annotations

import csv
import shutil

import pytest

from experiments.tables import main
from tests.table_fixtures import lth_config, ofa_config, ofa_jobs, ofa_rows, write_job


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


# ---- once-for-all: pairs within one configuration ---------------------------------------------------------------

LR3_PHASES = [{"name": "full", "epochs": 15, "lr": 0.3}]


def _ofa_runs(root, seeds=(0, 1)):
    """Per seed: the default PS job (corners 0.5 points above scratch, 3 above no-PS), a PS job of other phases
    (corners 1 point higher, its own scratch corners 4.5 lower), and a no-PS job of the default phases."""
    ofa_jobs(root, seeds=seeds)
    for seed in seeds:
        config = ofa_config(seed)
        config["method"]["phases"] = LR3_PHASES
        rows = ofa_rows(seed, scratch_gap=0.045)
        for r in rows:
            r["acc/test"] = r["acc/test"] + 0.01 if r["ofa/kind"] == "ofa_corner" else r["acc/test"]
        write_job(root / f"lr3_{seed}", rows, config)


def _table(name, root, out, *extra):
    assert main([name, "--runs", str(root), "--out", str(out), *extra]) == 0
    return _csv(out / "table.csv"), (out / "table.md").read_text()


def test_ps_vs_scratch_keeps_each_configuration_its_own_rows(tmp_path):
    _ofa_runs(tmp_path / "runs")
    rows, md = _table("ofa_ps_vs_scratch", tmp_path / "runs", tmp_path / "out")
    assert len(rows) == 16 and {r["runs"] for r in rows} == {"2"}  # 8 corners x 2 configurations, 2 seeds each
    by_phases = {}
    for r in rows:
        by_phases.setdefault(r["method.phases"], set()).add(round(float(r["acc/diff/mean"]), 9))
    assert sorted(by_phases.values(), key=min) == [{0.5}, {5.5}]  # each job paired with its own scratch corners
    assert "[method.phases=" in md and "mean difference +5.50 points over 8 corners" in md  # a verdict each
    assert "Rows also differ in method.phases" in md


def test_ps_vs_no_ps_pairs_within_a_configuration_or_by_an_explicit_pair_rule(tmp_path):
    _ofa_runs(tmp_path / "runs")
    rows, _ = _table("ofa_ps_vs_no_ps", tmp_path / "runs", tmp_path / "a")
    assert len(rows) == 8 and {round(float(r["acc/diff/mean"]), 9) for r in rows} == {3.0}  # the default PS only
    rows, _ = _table("ofa_ps_vs_no_ps", tmp_path / "runs", tmp_path / "b", "--pair", "method.phases")
    assert len(rows) == 16  # the other PS job paired with the no-PS job of its seed too, in rows of its own
    assert sorted({round(float(r["acc/diff/mean"]), 9) for r in rows}) == [3.0, 4.0]


@pytest.mark.parametrize("name", ["ofa_ps_vs_scratch", "ofa_ps_vs_no_ps", "ofa_search", "ofa_pareto", "ofa_cost"])
def test_two_jobs_claiming_one_slot_is_an_error_naming_both(tmp_path, capsys, name):
    root = tmp_path / "runs"
    ofa_jobs(root)
    shutil.copytree(root / "progressive_0", root / "progressive_0_again")  # the same configuration and seed twice
    with pytest.raises(SystemExit) as exit_:
        main([name, "--runs", str(root)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "two jobs claim one slot" in err
    assert str(root / "progressive_0") in err and str(root / "progressive_0_again") in err


def test_cost_is_per_configuration_and_seed(tmp_path):
    _ofa_runs(tmp_path / "runs")
    rows, _ = _table("ofa_cost", tmp_path / "runs", tmp_path / "out")
    assert len(rows) == 2 * 6 and {r["runs"] for r in rows} == {"2"}


def test_pair_is_refused_for_a_table_that_pairs_nothing_or_an_unknown_key(tmp_path, capsys):
    _ofa_runs(tmp_path / "runs")
    for args in (["lth_mnist1d_curve", "--pair", "method.phases"], ["ofa_ps_vs_no_ps", "--pair", "method.phasess"]):
        with pytest.raises(SystemExit) as exit_:
            main([*args, "--runs", str(tmp_path / "runs")])
        assert exit_.value.code == 2 and "--pair" in capsys.readouterr().err


def test_rows_metered_beside_other_jobs_are_named_in_the_caption_as_upper_bounds(tmp_path):
    """A job whose windows overlapped other metered jobs (joblib on one host) holds the host's shared power in full:
    the caption names it and calls its energy an upper bound; a job metered alone is not named."""
    def job(name, seed, overlapping):
        row = {"lth/level": 1, "lth/kind": "ticket", "lth/percent_remaining": 80.0, "acc/test": 0.5, "seed": seed,
               "energy/joules": 10.0, "energy/overlapping_jobs": overlapping}
        write_job(tmp_path / "runs" / name, [row], lth_config(seed))

    job("solo_job", 0, 0)
    job("crowded", 1, 2)
    out = tmp_path / "out"
    assert main(["lth_mnist1d_curve", "--runs", str(tmp_path / "runs"), "--out", str(out)]) == 0
    text = (out / "caption.txt").read_text()
    assert "Energy of 1 job (crowded) was metered while other jobs ran on the same host" in text
    assert "upper bounds" in text and "solo_job" not in text


def test_a_paired_table_labels_overlapping_energy_from_the_jobs_records(tmp_path):
    """Paired tables derive their rows (the energy keys are not in them): the label reads the jobs' records."""
    from tests.table_fixtures import ofa_config, ofa_rows

    for seed in (0, 1):
        rows = [{**r, "energy/overlapping_jobs": seed} for r in ofa_rows(seed)]  # seed 1's job had a neighbour
        write_job(tmp_path / "runs" / f"ps_{seed}", rows, ofa_config(seed))
    out = tmp_path / "out"
    assert main(["ofa_ps_vs_scratch", "--runs", str(tmp_path / "runs"), "--out", str(out)]) == 0
    text = (out / "caption.txt").read_text()
    assert "Energy of 1 job (ps_1) was metered while other jobs ran" in text and "ps_0" not in text
