"""leanlab-tables: numeric CSV, strict LaTeX, config-aware grouping, captions from configs, versioned --out."""

import ast
import csv
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.tables import (
    build_table,
    caption,
    load_runs,
    main,
    to_csv,
    to_latex,
    to_markdown,
    write_run_table,
)
from experiments.tables.columns import AF_COLUMNS
from experiments.tables.runs import dedupe
from experiments.tables.spec import Column
from tests.table_fixtures import SYNTHETIC, af_rows, lth_config, lth_rows, write_job

ROOT = Path(__file__).resolve().parents[1]
ACC = [Column("lth/level", "level"), Column("lth/kind", "kind"), Column("acc/test", "test acc", "{:.3f}")]


def _csv(path: Path) -> list[dict]:
    return list(csv.DictReader(path.read_text().splitlines()))


def _one_row_jobs(root: Path, accs: list[float], steps=None, **row) -> None:
    for seed, acc in enumerate(accs):
        write_job(root / f"s{seed}", [{"lth/level": 1, "lth/kind": "ticket", "lth/percent_remaining": 80.0, "acc/test": acc,
                                   "seed": seed, **row}],
                  lth_config(seed, steps))


def test_failed_and_unfinished_runs_are_missing_not_zero(tmp_path, capsys):
    _one_row_jobs(tmp_path, [0.5, 0.7])
    write_job(tmp_path / "failed", [], lth_config(2), status="failed")
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "config.yaml").write_text("seed: 3\n")
    runs = load_runs([tmp_path])
    assert sorted(r["acc/test"] for r in runs.rows) == [0.5, 0.7]
    assert len(runs.missing) == 2 and any("failed: boom" in m for m in runs.missing)
    assert any("unfinished" in m for m in runs.missing)
    assert main(["--runs", str(tmp_path), "--group-by", "lth/level,lth/kind", "--format", "csv",
                 "--columns", "acc/test"]) == 0
    out = capsys.readouterr()
    assert list(csv.DictReader(out.out.splitlines())) == [
        {"lth/level": "1", "lth/kind": "ticket", "runs": "2", "acc/test/mean": "0.6",
         "acc/test/std": str(statistics.stdev([0.5, 0.7])), "acc/test/n": "2"}]
    assert out.err.count("missing:") == 2


def test_csv_columns_are_numbers_mean_std_n(tmp_path, capsys):
    _one_row_jobs(tmp_path, [0.61, 0.65, 0.66])
    assert main(["lth_mnist1d_curve", "--runs", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    (row,) = _csv(tmp_path / "out" / "table.csv")
    assert float(row["acc/test/mean"]) == pytest.approx(statistics.fmean([0.61, 0.65, 0.66]), abs=1e-15)
    assert float(row["acc/test/std"]) == pytest.approx(statistics.stdev([0.61, 0.65, 0.66]), abs=1e-15)
    assert row["acc/test/n"] == "3" and row["runs"] == "3"
    for key, value in row.items():  # every statistics column parses as a number; no "±" anywhere
        assert "±" not in value
        if key.endswith(("/mean", "/std", "/n")) and value:
            float(value)
    md = (tmp_path / "out" / "table.md").read_text()
    assert "0.640 ± 0.026" in md and "| 3 |" in md


def test_single_run_shows_its_value_alone_and_a_seed_column_when_not_aggregated(tmp_path):
    rows = [{"lth/level": 1, "lth/kind": "ticket", "acc/test": 0.625, "seed": 4}]
    table = build_table(rows, ACC, group_by=["lth/level", "lth/kind"])
    assert to_markdown(table).splitlines()[-1] == "| 1 | ticket | 1 | 0.625 |"  # no "± 0 (n=1)"
    assert "mAP" not in to_markdown(build_table([{**rows[0], "map/test": None}], [*ACC, Column("map/test", "mAP")],
                                                ["lth/level"]))  # a column no run has is not shown
    runs = [{**rows[0], "seed": s, "acc/test": a} for s, a in ((0, 0.5), (1, 0.75))]
    twice = build_table([*runs, runs[0]], ACC, ["lth/level", "lth/kind"])
    assert twice.rows[0]["runs"] == 3 and "holds a seed more than once ([0, 0, 1]" in twice.warnings[0]
    flat = build_table(runs, ACC, group_by=[])
    assert [c.key for c in flat.shown] == ["seed", "lth/level", "lth/kind", "acc/test"]
    assert _csv_text(to_csv(flat)) == [{"seed": "0", "lth/level": "1", "lth/kind": "ticket", "acc/test": "0.5"},
                                       {"seed": "1", "lth/level": "1", "lth/kind": "ticket", "acc/test": "0.75"}]


def _csv_text(text: str) -> list[dict]:
    return list(csv.DictReader(text.splitlines()))


def _latex_cells(tex: str) -> tuple[str, list[list[str]]]:
    """(caption, rows of cells) of our table float; fails on an unescaped special character outside math."""
    lines = tex.splitlines()
    assert lines[:2] == ["\\begin{table}", "\\centering"] and lines[-3:] == ["\\hline", "\\end{tabular}",
                                                                              "\\end{table}"]
    cap = re.fullmatch(r"\\caption\{(.*)\}", lines[2]).group(1)
    ncols = len(re.fullmatch(r"\\begin\{tabular\}\{(l+)\}", lines[3]).group(1))
    body = [line for line in lines[4:-3] if line != "\\hline"]
    rows = []
    for line in body:
        assert line.endswith(" \\\\")
        cells = re.split(r"(?<!\\) & ", line[:-3])
        assert len(cells) == ncols, line  # an unescaped & would add a cell
        rows.append(cells)
    for text in [cap, *[c for row in rows for c in row]]:
        outside_math = re.sub(r"(?<!\\)\$[^$]*(?<!\\)\$", "", text)
        stripped = re.sub(r"\\(textbackslash|textasciitilde|textasciicircum|textless|textgreater)\{\}", "", outside_math)
        stripped = re.sub(r"\\[&%$#_{}]", "", stripped)
        bad = [ch for ch in stripped if ch in "\\&%$#_{}~^<>±—"]
        assert not bad, f"unescaped {bad} in {text!r}"
        assert stripped.count("{") == stripped.count("}") == 0
    return cap, rows


def test_latex_escapes_every_special_character():
    nasty = "50% a_b & c #1 $x {y} ~z ^w \\v <q> ± —"
    rows = [{"lth/level": 0, "lth/kind": nasty, "acc/test": 0.5, "seed": 0},
            {"lth/level": 0, "lth/kind": nasty, "acc/test": 0.7, "seed": 1},
            {"lth/level": 1, "lth/kind": "ticket", "acc/test": None, "seed": 0}]
    cols = [*ACC[:2], Column("acc/test", "acc % & _#", "{:.3f}"), Column("energy/method", "energy method", note=True)]
    table = build_table([{**r, "energy/method": "estimated_cpu#1"} for r in rows], cols, ["lth/level", "lth/kind"])
    cap, cells = _latex_cells(to_latex(table, caption="Acc. in % of 100 & more; seeds_0_1 #2"))
    assert cells[0] == ["level", "kind", "runs", "acc \\% \\& \\_\\#"]
    assert cells[1] == ["0", latex_of(nasty), "2", "0.600 $\\pm$ 0.141"]
    assert cells[2] == ["1", "ticket", "1", "--"]
    assert "estimated\\_cpu\\#1" in cap and "100 \\& more" in cap  # the noted column went to the caption


def latex_of(text: str) -> str:
    from experiments.tables.render import latex_escape

    return latex_escape(text)


def test_different_steps_and_sweeps_are_never_pooled_silently(tmp_path, capsys):
    _one_row_jobs(tmp_path / "short", [0.5, 0.6], steps=100)
    _one_row_jobs(tmp_path / "long", [0.8, 0.9], steps=1000)
    assert main(["lth_mnist1d_curve", "--runs", str(tmp_path), "--out", str(tmp_path / "a")]) == 0
    table = _csv(tmp_path / "a" / "table.csv")
    assert [(r["optim.steps"], r["runs"], round(float(r["acc/test/mean"]), 12)) for r in table] == [
        ("100", "2", 0.55), ("1000", "2", 0.85)]
    assert "Rows also differ in optim.steps" in (tmp_path / "a" / "caption.txt").read_text()
    assert "| optim.steps |" in (tmp_path / "a" / "table.md").read_text()
    capsys.readouterr()
    assert main(["lth_mnist1d_curve", "--runs", str(tmp_path), "--pool", "optim.steps", "--format", "csv"]) == 0
    (pooled,) = _csv_text(capsys.readouterr().out)
    assert pooled["runs"] == "4" and float(pooled["acc/test/mean"]) == pytest.approx(0.7)
    with pytest.raises(SystemExit) as exit_:
        main(["lth_mnist1d_curve", "--runs", str(tmp_path), "--pool", "optim.step"])
    assert exit_.value.code == 2 and "did you mean 'optim.steps'?" in capsys.readouterr().err
    for sweep in ("2026-01-01", "2026-02-01"):  # the same sweep run twice: two rows, told apart by folder
        (tmp_path / "twice" / sweep).mkdir(parents=True)
        (tmp_path / "twice" / sweep / "multirun.yaml").write_text("{}\n")
        _one_row_jobs(tmp_path / "twice" / sweep / "jobs", [0.5, 0.7])
    for roots in (["twice"], ["twice/2026-01-01", "twice/2026-02-01"]):  # one --runs folder or one per sweep
        assert main(["lth_mnist1d_curve", "--format", "csv", "--runs", *[str(tmp_path / r) for r in roots]]) == 0
        assert [(r["sweep"], r["runs"]) for r in _csv_text(capsys.readouterr().out)] == [("2026-01-01", "2"),
                                                                                         ("2026-02-01", "2")]


def test_caption_comes_from_the_configs(tmp_path):
    _one_row_jobs(tmp_path, [0.5, 0.6], steps=250)
    rows = load_runs([tmp_path]).rows
    text = caption(rows, build_table(rows, ACC, ["lth/level", "lth/kind"]), about="ABOUT")
    assert text.startswith("Runs: experiment lth_mnist1d; data mnist1d; model mlp; optimiser adam; steps 250; "
                           "epochs 2; seeds 0, 1 (2 jobs).")
    assert "standard deviation (ddof=1)" in text and text.endswith("ABOUT")


def test_baseline_rows_repeated_by_every_job_are_not_split_by_the_swept_value(tmp_path):
    rows = []
    for seed in (0, 1):
        for lam in (0.05, 0.5) if seed == 0 else (0.5, 0.05):  # seed 1's first job is another lam
            rows += [{**r, "config": {"method.lam": lam, "data.name": "needle"}} for r in af_rows(seed, lam)]
    kept = dedupe(rows, ["seed", "af/method", "af/setting"])
    table = build_table(kept, AF_COLUMNS, ["af/method", "af/setting"])
    assert table.split_by == []
    assert sorted((r["af/method"], r["af/setting"], r["runs"]) for r in table.rows) == [
        ("learned", "lam=0.05", 2), ("learned", "lam=0.5", 2), ("uniform", "k=1@112", 2), ("uniform", "k=2@112", 2),
        ("uniform", "k=4@112", 2)]


def test_out_never_overwrites_a_table(tmp_path, capsys):
    _one_row_jobs(tmp_path / "runs", [0.5, 0.6])
    out = tmp_path / "results"
    args = ["lth_mnist1d_curve", "--runs", str(tmp_path / "runs"), "--out", str(out)]
    assert main(args) == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == ["caption.txt", "plot.png", "table.csv", "table.md", "table.tex"]
    assert main(args) == 0 and main(args) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == first
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["v2", "v3"]
    assert (out / "v3" / "table.csv").read_bytes() == first["table.csv"]
    assert "to " + str(out / "v3") in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main([*args[:-1], str(out / "table.md")])
    assert exit_.value.code == 2 and "is a file, not a folder" in capsys.readouterr().err
    assert (out / "table.md").read_bytes() == first["table.md"]


def test_run_table_written_to_the_run_folder_with_a_constant_method_as_a_note(tmp_path):
    rows = lth_rows(0, levels=1)
    text = write_run_table(tmp_path, rows, "lth")
    assert (tmp_path / "table.md").read_text() == text + "\n"
    header = text.splitlines()[0]
    assert "energy method" not in header and "seed" not in header and "test acc" in header
    assert text.splitlines()[-2:] == ["- seed: 0 (every row)", "- energy method: estimated:cpu (every row)"]
    rows[1]["energy/method"] = "measured:rapl"
    assert "| energy method |" in write_run_table(tmp_path, rows, "lth").splitlines()[0] + "|"
    assert "test acc" in write_run_table(tmp_path, rows, "a_task_without_columns")


def test_a_run_writes_its_table_into_its_folder(tmp_path):
    from tests.helpers import FAST, run_cli

    job = tmp_path / "job"
    result = run_cli([*FAST, "method.levels=0", f"hydra.run.dir={job}"], cwd=ROOT)
    assert result.returncode == 0, result.stderr
    table = (job / "table.md").read_text()
    assert table.rstrip("\n") in result.stdout
    assert [line.split(" | ")[:2] for line in table.splitlines() if line.startswith("| ")] == [
        ["| level", "kind"], ["| 0", "ticket"]]
    assert "- energy method: " in table and "| energy method |" not in table


def test_tables_registered_whatever_is_imported_first():
    code = ("from experiments.tables.spec import TABLES, RUN_COLUMNS; "
            "print(len(TABLES.names()), 'lth' in RUN_COLUMNS)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(len(SYNTHETIC)), "True"]  # every table with synthetic runs


def test_tables_package_has_no_import_cycle_and_small_files():
    package = ROOT / "experiments" / "tables"
    graph = {}
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        imports = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imports |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        graph[f"experiments.tables.{path.stem}"] = {m for m in imports if m.startswith("experiments.tables.")}
        assert len(path.read_text().splitlines()) < 400, path
        assert "lth.registry" not in imports, path
    submodules = {m for m in graph if not m.endswith(("__init__", "__main__"))}
    for module in submodules:  # depth-first: no module reaches itself
        stack, seen = list(graph[module]), set()
        while stack:
            current = stack.pop()
            assert current != module, f"import cycle through {module}"
            if current not in seen:
                seen.add(current)
                stack += graph.get(current, ())
        assert "experiments.tables" not in {m for m in graph[module]}  # never the package from inside it
    assert not (ROOT / "experiments" / "paper_tables.py").exists()


def test_csv_std_of_one_run_is_empty_not_zero(tmp_path):
    _one_row_jobs(tmp_path, [0.61])
    assert main(["lth_mnist1d_curve", "--runs", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    (row,) = _csv(tmp_path / "out" / "table.csv")
    assert row["acc/test/std"] == "" and row["acc/test/n"] == "1" and float(row["acc/test/mean"]) == 0.61


def test_log_ticks_tell_neighbouring_values_apart():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from experiments.tables.plots import log_ticks

    fig, ax = plt.subplots()
    ax.set_xscale("log")
    ax.set_xlim(1.0e6, 4.0e6)
    log_ticks(ax.xaxis, [1.0e6, 4.0e6], "FLOP")
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text() and 1e6 <= t.get_position()[0] <= 4e6]
    plt.close(fig)
    assert len(labels) == len(set(labels)) >= 3, labels  # 1.5 M and 2 M used to both print "2 MFLOP"
