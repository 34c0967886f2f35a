"""`leanlab-tables`: aggregate run folders into a paper table (Markdown, CSV, LaTeX) and its plot.

  leanlab-tables lth_mnist1d_curve                  # a named table over its stored sweep's latest folder
  leanlab-tables lth_mnist1d_curve --runs DIR ...   # ... over given run folders
  leanlab-tables --runs DIR ... --group-by lth/level,lth/kind --format csv
  leanlab-tables lth_mnist1d_curve --out results/   # also writes table.{md,csv,tex}, plot.png, caption.txt

Reads every `summary.json` under the given folders. Failed or unfinished jobs are listed as missing (on stderr
and in missing.txt), never counted as zeros. Runs whose configs differ (other steps, another sweep folder, any
config.yaml value but the seed) are never pooled into one row unless `--pool KEY` says so; a paired table pairs
two jobs of one seed and configuration unless `--pair KEY` lets KEY differ between the sides. `--out` never
overwrites: an existing, non-empty folder gets the table in a new version folder inside it (v2, v3, ...).
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import os
import shutil
import sys
import tempfile
from functools import partial
from pathlib import Path

from experiments.tables.build import build_table, caption, config_value, variant
from experiments.tables.columns import DEFAULT_RUN_COLUMNS
from experiments.tables.defaults import fill_defaults
from experiments.tables.render import to_csv, to_latex, to_markdown
from experiments.tables.runs import dedupe, load_runs
from experiments.tables.spec import RUN_COLUMNS, TABLES, Column, TableSpec

RENDERERS = {"md": to_markdown, "csv": lambda table, text="": to_csv(table), "latex": to_latex}


def latest_sweep_folder(output_root: Path, sweep: str) -> Path:
    """The newest folder of a stored sweep: <output_root>/sweeps/<sweep>/<timestamp>."""
    base = output_root / "sweeps" / sweep
    folders = sorted(p for p in base.glob("*") if p.is_dir()) if base.exists() else []
    if not folders:
        raise FileNotFoundError(f"no runs of sweep {sweep!r} under {base}; run "
                                f"`python -m experiments.run sweep={sweep}` first, or pass --runs")
    return folders[-1]


def free_out_folder(out: Path) -> Path:
    """`out` if it is new or empty, else the first free `out/v2`, `out/v3`, ...: never overwrite a table."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return out
    if not out.is_dir():
        raise NotADirectoryError(f"{out} is a file, not a folder; choose a folder path")
    version = 2
    while (out / f"v{version}").exists():
        version += 1
    return out / f"v{version}"


def write_outputs(out: Path, files: dict[str, bytes], plot=None) -> Path:
    """Write everything into a hidden temp folder beside the target, then rename it into place: an interrupted
    write never leaves a folder that looks complete. Returns the folder written."""
    target = free_out_folder(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        if plot is not None:
            plot(tmp / "plot.png")
        if target.exists():  # the empty folder given as --out
            target.rmdir()
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def title(name: str, rows: list[dict]) -> str:
    parts = [str(v) for key in ("data.name", "model.name")
             if len(vs := {config_value(r, key) for r in rows}) == 1 and isinstance(v := next(iter(vs)), str)]
    return f"{name}: {', '.join(parts)}" if parts else name


def _pairs(spec: TableSpec) -> bool:
    """Whether a table pairs runs (its derive takes `pair`: config keys the two sides may differ in)."""
    return spec.derive is not None and "pair" in inspect.signature(spec.derive).parameters


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leanlab-tables", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", nargs="?", help=f"a named table: {', '.join(TABLES.names())}")
    parser.add_argument("--runs", nargs="+", type=Path, help="run folders or folders containing them")
    parser.add_argument("--output-root", type=Path, default=Path("outputs"))
    parser.add_argument("--format", default="md", choices=sorted(RENDERERS))
    parser.add_argument("--columns", default=None, help="comma-separated row keys (default: the table's, or those of the runs' task)")
    parser.add_argument("--group-by", default=None, help="comma-separated keys; mean ± std over the other runs")
    parser.add_argument("--pool", default="", help="comma-separated config keys (e.g. optim.steps, sweep) whose "
                        "differing values may share a row; by default any differing config value splits rows")
    parser.add_argument("--pair", default="", help="comma-separated config keys (e.g. method.phases) in which the two "
                        "sides of a paired table (ofa_ps_vs_no_ps, ...) may differ; by default a pair is two jobs "
                        "of the same seed and configuration")
    parser.add_argument("--out", type=Path, help="folder for table.{md,csv,tex}, caption.txt and plot.png "
                        "(an existing non-empty folder gets a new version folder v2, v3, ... inside it)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.table is None and not args.runs:
        parser.error("give a table name or --runs")
    spec: TableSpec | None = None
    if args.table is not None:
        if args.table not in TABLES:
            parser.error(f"unknown table {args.table!r}; tables: {', '.join(TABLES.names())}")
        spec = TABLES.get(args.table)
    try:
        paths = args.runs or [latest_sweep_folder(args.output_root, spec.sweep)]
    except FileNotFoundError as e:
        parser.error(str(e))
    for p in paths:
        if not p.exists():
            parser.error(f"--runs path {p} does not exist")
    try:
        runs = load_runs(paths)
    except ValueError as e:
        parser.error(str(e))
    fill_defaults(runs.rows)  # a key older runs lack: the schema's default for them (the caption says which)
    tasks = {config_value(r, "task") for r in runs.rows}
    task = next(iter(tasks)) if len(tasks) == 1 else None
    columns = spec.columns if spec else RUN_COLUMNS.get(task) if task in RUN_COLUMNS else DEFAULT_RUN_COLUMNS
    if args.columns:
        columns = [Column(k, k, "{:.4g}") for k in args.columns.split(",")]
    group_by = args.group_by.split(",") if args.group_by else (spec.group_by if spec else [])
    rows = dedupe(runs.rows, spec.dedupe_by) if spec and spec.dedupe_by else runs.rows
    pair = tuple(filter(None, args.pair.split(",")))
    if pair and not (spec and _pairs(spec)):
        parser.error(f"--pair: table {args.table} does not pair runs; paired tables: "
                     f"{', '.join(n for n in TABLES.names() if _pairs(TABLES.get(n)))}")
    known = set().union(*(r["config"] for r in rows)) if rows else set()
    for key in [k for k in pair if k not in known and rows]:
        parser.error(f"--pair {key!r} is not a config key of these runs")
    if spec and spec.derive and rows:
        try:
            rows = spec.derive(rows, pair=pair) if pair else spec.derive(rows)
        except ValueError as e:  # the runs lack what the table pairs up; nothing is written
            parser.error(f"{args.table}: {e}")
    asked = list(filter(None, args.pool.split(",")))
    pool = [*(spec.pool if spec else []), *asked]
    known = set().union(*(r["config"] for r in rows))
    for key in [k for k in asked if k not in known and rows]:  # a spec's own pool may name keys older runs lack
        near = difflib.get_close_matches(key, sorted(known), n=1)
        parser.error(f"--pool {key!r} is not a config key of these runs" + (f"; did you mean {near[0]!r}?" if near
                                                                           else ""))
    table = build_table(rows, columns, group_by, pool, sort_by=spec.sort_by if spec else None)
    if spec and spec.checks and rows:
        table.statements = spec.checks(rows, table)
    text = caption(rows, table, spec.about if spec else "", records=runs.rows)
    print(RENDERERS[args.format](table, text))
    for m in runs.missing:
        print(f"missing: {m}", file=sys.stderr)
    for w in table.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.out:
        files = {"table.md": to_markdown(table, text), "table.csv": to_csv(table), "table.tex": to_latex(table, text),
                 "caption.txt": text}
        if runs.missing:
            files["missing.txt"] = "\n".join(runs.missing)
        plot = None
        if spec and rows:
            plotted = [{**r, "variant": variant(r, table.split_by)} for r in rows]
            plot = partial(spec.plot, plotted, title=title(args.table, rows))
        try:
            written = write_outputs(args.out, {k: (v + "\n").encode() for k, v in files.items()}, plot)
        except KeyError as e:  # nothing was written
            parser.exit(2, f"leanlab-tables: error: the {args.table} plot needs row key {e} that some runs under "
                           f"{', '.join(map(str, paths))} lack; nothing was written to {args.out}\n")
        except OSError as e:
            parser.exit(2, f"leanlab-tables: error: cannot write the table into --out {args.out}: {e}\n")
        print(f"wrote {', '.join(sorted(files) + (['plot.png'] if plot else []))} to {written}", file=sys.stderr)
    return 0 if rows or not runs.missing else 1
