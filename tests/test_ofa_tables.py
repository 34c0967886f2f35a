"""The once-for-all tables on synthetic `ofa` run folders: exact paired means and differences, the cost table and
its break-even N by hand, and verdict lines that flip when the numbers cross the published thresholds."""

import csv
import math

import pytest

from experiments.tables import main
from experiments.tables.ofa import break_even
from tests.table_fixtures import (
    OFA_CORNERS,
    OFA_TARGETS,
    ofa_config,
    ofa_jobs,
    ofa_predictor_jobs,
    ofa_rows,
    write_job,
)


def table(name: str, tmp_path, **fixture) -> tuple[str, list[dict]]:
    """(the Markdown table with its lines under it, the CSV rows) of `name` over synthetic seeds 0 and 1."""
    root = tmp_path / "runs"
    if not root.exists():
        ofa_jobs(root, **fixture)
    out = tmp_path / "out"
    assert main([name, "--runs", str(root), "--out", str(out)]) == 0
    md = (out / "table.md").read_text()
    return md, list(csv.DictReader((out / "table.csv").read_text().splitlines()))


def line(md: str, start: str) -> str:
    found = [x for x in md.splitlines() if x.startswith(f"- {start}")]
    assert len(found) == 1, md
    return found[0]


def reproduces(md: str, start: str) -> bool:
    text = line(md, start)
    assert text.endswith(("Reproduces.", "Does NOT reproduce at this scale.")), text
    return text.endswith("Reproduces.")


def test_ps_vs_scratch_exact_means_paired_differences_and_flops_order(tmp_path, capsys):
    md, rows = table("ofa_ps_vs_scratch", tmp_path)
    assert [r["ofa/corner"] for r in rows] == OFA_CORNERS  # ordered by FLOPs (the fixture's corner order)
    first = rows[0]
    assert float(first["acc/a/mean"]) == pytest.approx(70.5)  # 70 and 71 points over seeds 0, 1
    assert float(first["acc/a/std"]) == pytest.approx(math.sqrt(0.5))
    assert float(first["acc/b/mean"]) == pytest.approx(70.0)
    assert float(first["acc/diff/mean"]) == pytest.approx(0.5) and float(first["acc/diff/std"]) == pytest.approx(0)
    assert {r["runs"] for r in rows} == {"2"}
    assert "mean difference +0.50 points over 8 corners, worst +0.50" in md
    assert "Energy is ESTIMATED, not measured (energy/method: estimated:cpu)" in md


@pytest.mark.parametrize("gap, ok", [
    (0.005, True),
    ({"dmax-emax-kmax": -0.019}, True),   # one corner 1.9 below: allowed
    ({"dmax-emax-kmax": -0.021}, False),  # 2.1 below: not
    (-0.0095, True),                      # 0.95 below on average
    (-0.0105, False),                     # 1.05 below on average
])
def test_ps_vs_scratch_verdict_follows_the_numbers(tmp_path, capsys, gap, ok):
    md, _ = table("ofa_ps_vs_scratch", tmp_path, scratch_gap=gap)
    assert reproduces(md, "Published: sub-nets of the PS supernet") is ok


def test_ps_vs_no_ps_pairs_by_seed(tmp_path, capsys):
    md, rows = table("ofa_ps_vs_no_ps", tmp_path)
    assert [float(r["acc/diff/mean"]) for r in rows] == pytest.approx([3.0] * 8)
    assert float(rows[0]["acc/b/mean"]) == pytest.approx(67.5)
    assert "smallest (dmin-emin-kmin) +3.00 points, mean over 8 corners +3.00" in md
    # seed 1 without its no-PS job: only seed 0 pairs up
    root = tmp_path / "one"
    write_job(root / "ps0", ofa_rows(0), ofa_config(0))
    write_job(root / "ps1", ofa_rows(1), ofa_config(1))
    write_job(root / "no0", ofa_rows(0, "no_ps"), ofa_config(0, "no_ps"))
    capsys.readouterr()
    assert main(["ofa_ps_vs_no_ps", "--runs", str(root), "--format", "csv"]) == 0
    out = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert {r["runs"] for r in out} == {"1"} and float(out[0]["acc/a/mean"]) == pytest.approx(70.0)


@pytest.mark.parametrize("gap, ok", [
    ({c: 0.021 if c == "dmin-emin-kmin" else 0.03 for c in OFA_CORNERS}, True),
    ({c: 0.019 if c == "dmin-emin-kmin" else 0.03 for c in OFA_CORNERS}, False),  # smallest only 1.9 better
    ({c: 0.025 if c == "dmin-emin-kmin" else 0.0085 for c in OFA_CORNERS}, True),  # mean 1.06
    ({c: 0.025 if c == "dmin-emin-kmin" else 0.0075 for c in OFA_CORNERS}, False),  # mean 0.97
])
def test_ps_vs_no_ps_verdict_follows_the_numbers(tmp_path, capsys, gap, ok):
    md, _ = table("ofa_ps_vs_no_ps", tmp_path, no_ps_gap=gap)
    assert reproduces(md, "Published: progressive shrinking") is ok


def test_search_rows_exact(tmp_path, capsys):
    md, rows = table("ofa_search", tmp_path)
    predictor, *searched = rows  # "accuracy predictor ..." sorts before "searched sub-net ..."
    assert float(predictor["predictor/rmse_points/mean"]) == pytest.approx(0.8)
    assert [float(r["ofa/target_fraction"]) for r in searched] == list(OFA_TARGETS)
    assert [float(r["acc/diff/mean"]) for r in searched] == pytest.approx([1.5] * 4)
    assert float(searched[0]["acc/predicted/mean"]) == pytest.approx(81.0)
    assert float(searched[0]["latency/abs_error_pct/mean"]) == pytest.approx(5.0)
    assert float(searched[0]["flops/b/mean"]) == pytest.approx(1950)
    assert "RMSE 0.80 points, tau 0.70" in md
    assert float(searched[0]["acc/val/mean"]) == pytest.approx(80.5)
    assert "predicted minus measured validation accuracy: mean +0.50 points" in md


@pytest.mark.parametrize("fixture, start, ok", [
    ({"width_gap": {0.25: 0.011, 0.5: 0.011}}, "Published: searched", True),
    ({"width_gap": {0.25: 0.009, 0.5: 0.015}}, "Published: searched", False),  # tightest only 0.9 better
    ({"width_gap": {0.25: 0.02, 0.5: 0.02, 1.0: -0.001}}, "Published: searched", False),  # below at 1.0
    ({"rmse": 1.01}, "Accuracy predictor", False),
    ({"tau": 0.59}, "Accuracy predictor", False),
    ({"rmse": 0.99, "tau": 0.61}, "Accuracy predictor", True),
    ({"latency_error": -0.09}, "Latency table", True),  # |error| counts
    ({"latency_error": {0.75: 0.11}}, "Latency table", False),
])
def test_search_verdicts_follow_the_numbers(tmp_path, capsys, fixture, start, ok):
    md, _ = table("ofa_search", tmp_path, **fixture)
    assert reproduces(md, start) is ok


def test_cost_table_and_break_even_by_hand(tmp_path, capsys):
    md, rows = table("ofa_cost", tmp_path)
    by_n = {int(r["ofa/targets_n"]): r for r in rows}
    assert sorted(by_n) == [1, 2, 4, 10, 40, 100]
    # fixed = supernet 1000 + latency table 50 + predictor 150 J; 10 J per search; 200 J per trained model
    assert float(by_n[10]["cost/ofa_j/mean"]) == pytest.approx(1300)
    assert float(by_n[10]["cost/scratch_j/mean"]) == pytest.approx(2000)
    assert float(by_n[40]["cost/ratio_j/mean"]) == pytest.approx(1600 / 8000)
    assert float(by_n[40]["cost/ofa_g/mean"]) == pytest.approx(160) and float(by_n[1]["cost/scratch_s/mean"]) == 20
    assert "= 6.32." in line(md, "Break-even N")  # 1200 / (200 - 10)
    assert reproduces(md, "Published (OFA Table 1)")


def test_break_even():
    assert break_even(1200, 10, 200) == pytest.approx(1200 / 190)
    assert break_even(1200, 10, 10) == math.inf  # a search costing as much as a training never pays off


@pytest.mark.parametrize("width_j, ok", [
    (170.0, True),   # break-even 7.5, N=40 ratio 0.235
    (150.0, False),  # break-even 8.6 but N=40 ratio 0.267
    (120.0, False),  # break-even 10.9
])
def test_cost_verdict_follows_the_numbers(tmp_path, capsys, width_j, ok):
    md, _ = table("ofa_cost", tmp_path, energy={"width_multiplier": width_j})
    assert reproduces(md, "Published (OFA Table 1)") is ok


def test_measured_energy_is_not_called_estimated(tmp_path, capsys):
    md, _ = table("ofa_cost", tmp_path, energy_method="measured:rapl")
    assert "ESTIMATED" not in md and "energy method: measured:rapl (every row)" in md


def test_pareto_scratch_corners_take_their_architectures_energy(tmp_path, capsys):
    md, rows = table("ofa_pareto", tmp_path)
    scratch = {r["ofa/name"]: r for r in rows if r["ofa/kind"] == "scratch_corner"}
    assert float(scratch["dmin-emin-kmax"]["infer/joules_per_sample/mean"]) == pytest.approx(2e-4)
    assert "same architecture" in scratch["dmin-emin-kmax"]["infer/energy_method"]
    assert "No energy per inference in the rows of: width_multiplier" in md


def test_a_table_without_its_pairs_is_one_clear_error_and_nothing_written(tmp_path, capsys):
    ofa_jobs(tmp_path / "runs", trainings=("progressive",))
    with pytest.raises(SystemExit) as e:
        main(["ofa_ps_vs_no_ps", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")])
    assert e.value.code == 2 and not (tmp_path / "out").exists()
    assert "ofa_ps_vs_no_ps: no rows to tabulate" in capsys.readouterr().err


def _figure(monkeypatch, plot, rows) -> object:
    from experiments.tables import ofa_plots

    figures = []
    monkeypatch.setattr(ofa_plots, "save", lambda fig, path, title, note: figures.append(fig))
    plot(rows, None, "t")
    (fig,) = figures
    return fig


@pytest.mark.parametrize("method, word", [("estimated:cpu", "ESTIMATED"), ("measured:rapl", "measured")])
def test_pareto_plot_marks_the_targets_and_labels_the_energy(monkeypatch, method, word):
    from experiments.tables.ofa import derive_pareto
    from experiments.tables.ofa_plots import plot_pareto

    rows = derive_pareto([r for s in (0, 1) for r in ofa_rows(s, energy_method=method)])
    left, right = _figure(monkeypatch, plot_pareto, rows).axes
    assert sorted(line.get_xdata()[0] for line in left.lines if line.get_linestyle() == ":") == [2000, 4000, 6000, 8000]
    assert word in right.get_xlabel() and "per inference" in right.get_xlabel()


def test_cost_plot_marks_the_break_even(monkeypatch):
    from experiments.tables.ofa import TABLES, derive_cost

    rows = derive_cost([r for s in (0, 1) for r in ofa_rows(s)])
    (ax,) = _figure(monkeypatch, TABLES.get("ofa_cost").plot, rows).axes
    (line,) = [x for x in ax.lines if x.get_linestyle() == ":"]
    assert line.get_xdata()[0] == pytest.approx(1200 / 190) and "estimated energy" in ax.get_ylabel()


def test_predictor_variants_pair_with_ofas_predictor_on_the_same_supernet(tmp_path):
    root, out = tmp_path / "runs", tmp_path / "out"
    ofa_predictor_jobs(root)
    assert main(["ofa_predictor", "--runs", str(root), "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "table.csv").read_text().splitlines()))
    by = {(r["ofa/predictor_variant"], r["ofa/target_fraction"]): r for r in rows}
    assert len(rows) == 10 and all(r["runs"] == "2" for r in rows)  # seeds pooled despite per-seed supernet_from
    ofa, ens = ("identity x1", "0.25"), ("sigmoid x5, mean - 1 std", "0.25")
    assert float(by[ofa]["acc/gap/mean"]) == pytest.approx(0.5) and float(by[ens]["acc/gap/mean"]) == pytest.approx(0.2)
    assert float(by[ens]["acc/diff/mean"]) == pytest.approx(1.0) and float(by[ofa]["acc/diff/mean"]) == 0.0
    assert float(by[ens]["acc/test/mean"]) == pytest.approx(81.5)  # (81 + 82) / 2
    assert float(by[("sigmoid x5, mean - 1 std", "held-out sub-nets")]["predictor/rmse_points/mean"]) == 0.6
    md = (out / "table.md").read_text()
    assert ("- sigmoid x5, mean - 1 std: test accuracy 84.50 %, predicted - measured validation accuracy +0.20 "
            "points, test vs OFA's predictor on the same supernet +1.00 points (paired, n=8; better at 8, worse at "
            "0) over 8 searches.") in md
