"""Every registered table builds from synthetic run folders and writes a plot; plots have readable ticks."""

import csv

import pytest

from experiments.tables import TABLES, main
from experiments.tables import plots as plots_module
from tests.table_fixtures import SYNTHETIC, lth_rows


def test_every_table_has_synthetic_runs():
    assert sorted(SYNTHETIC) == TABLES.names()  # a new table needs runs in tests/table_fixtures.py


@pytest.mark.parametrize("name", TABLES.names())
def test_table_builds_and_plots(name, tmp_path, capsys):
    expected_rows = SYNTHETIC[name](tmp_path / "runs")
    out = tmp_path / "results"
    assert main([name, "--runs", str(tmp_path / "runs"), "--out", str(out)]) == 0
    capsys.readouterr()
    png = (out / "plot.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    table = list(csv.DictReader((out / "table.csv").read_text().splitlines()))
    assert len(table) == expected_rows and {r["runs"] for r in table} == {"2"}  # nothing pooled or split wrongly
    caption = (out / "caption.txt").read_text()
    assert "Rows also differ" not in caption and "seeds 0, 1" in caption


def _capture_axes(monkeypatch) -> list:
    figures = []
    monkeypatch.setattr(plots_module, "save", lambda fig, path, title, note: figures.append((fig, title, note)))
    return figures


def test_lth_plot_ticks_are_the_sparsities_run(monkeypatch, tmp_path):
    figures = _capture_axes(monkeypatch)
    rows = [r for seed in (0, 1) for r in lth_rows(seed, levels=15)]
    plots_module.plot_accuracy_vs_sparsity(rows, tmp_path / "p.png", "title")
    (fig, title, note), = figures
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:3] == ["100", "64", "41"] and len(labels) <= 8  # every 2nd of 16 levels, plain numbers
    assert not any("^" in t or "$" in t for t in labels)
    assert ax.get_xlabel() == "weights remaining (% of dense, log scale)"
    assert ax.get_ylabel() == "test accuracy (fraction correct)"
    assert "n = 2 seeds" in note and "standard deviation" in note


def test_moe_scaling_ticks_do_not_overlap(monkeypatch, tmp_path):
    from tests.table_fixtures import MOE_MODELS, moe_row

    figures = _capture_axes(monkeypatch)
    rows = [moe_row(*m, seed=s) for m in MOE_MODELS for s in (0, 1)]
    plots_module.plot_moe_scaling(rows, tmp_path / "p.png", "t")
    (fig, _, _), = figures
    fig.canvas.draw()
    for ax in fig.axes:
        boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text() and t.get_visible()]
        boxes = [b for b in boxes if ax.bbox.x0 - 5 <= b.x0 and b.x1 <= ax.bbox.x1 + 5]
        assert len(boxes) >= 2, [t.get_text() for t in ax.get_xticklabels()]
        assert all(a.x1 < b.x0 for a, b in zip(sorted(boxes, key=lambda b: b.x0), sorted(boxes, key=lambda b: b.x0)[1:]))


def test_mean_std_n_of_values_older_runs_lack_is_n_zero():
    from experiments.tables.plots import mean_std_n

    assert mean_std_n([1.0, 3.0, None]) == (2.0, 2 ** 0.5, 2)
    mean, std, n = mean_std_n([None, "not a number"])
    assert n == 0 and std == 0.0 and mean != mean  # nan: callers skip n = 0
