"""Aggregate run folders into paper tables (Markdown, CSV, LaTeX) and their plots.

  leanlab-tables lth_mnist1d_curve                  # a named table over its stored sweep's latest folder
  leanlab-tables lth_mnist1d_curve --runs DIR ...   # ... over given run folders
  leanlab-tables --runs DIR ... --group-by lth/level,lth/kind --format csv
  leanlab-tables lth_mnist1d_curve --out results/   # also writes table.{md,csv,tex} and plot.png there

Reads every `summary.json` under the given folders. Failed or unfinished jobs are listed as missing (on stderr and
under the table), never counted as zeros. Grouped numeric columns are reported as mean ± std (n).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lth.registry import Registry

TABLES: Registry = Registry("table")

# The columns printed at the end of an LTH run: (row key, header, format).
LTH_COLUMNS = [
    ("lth/level", "level", "{}"),
    ("lth/kind", "kind", "{}"),
    ("lth/percent_remaining", "% weights", "{:.1f}"),
    ("acc/test", "test acc", "{:.3f}"),
    ("acc/test_at_early_stop", "acc @ early stop", "{:.3f}"),
    ("lth/early_stop_step", "early-stop it", "{}"),
    ("flops/infer_per_sample", "infer FLOPs", "{:.3g}"),
    ("flops/infer_per_sample_dense", "dense FLOPs", "{:.3g}"),
    ("flops/train_total", "train FLOPs", "{:.3g}"),
    ("energy/joules", "energy J", "{:.3g}"),
    ("energy/method", "energy method", "{}"),
    ("carbon/g_co2e", "gCO2e", "{:.3g}"),
    ("time/wall_s", "wall s", "{:.1f}"),
]


MOE_COLUMNS = [
    ("moe/ffn", "ffn", "{}"), ("moe/d_ff", "d_ff", "{}"), ("moe/num_experts", "E", "{}"), ("moe/top_k", "k", "{}"),
    ("train/steps", "steps", "{}"),
    ("mse/test", "test MSE", "{:.4f}"), ("bpc/test", "test bpc", "{:.3f}"), ("acc/test", "test acc", "{:.3f}"),
    ("flops/infer_per_sample", "infer FLOPs", "{:.3g}"), ("params/total", "params", "{:.3g}"),
    ("params/active_per_token", "active params", "{:.3g}"), ("flops/train_total", "train FLOPs", "{:.3g}"),
    ("energy/joules", "energy J", "{:.3g}"), ("energy/method", "energy method", "{}"),
    ("carbon/g_co2e", "gCO2e", "{:.3g}"), ("time/wall_s", "wall s", "{:.1f}"),
]

AF_COLUMNS = [
    ("af/method", "method", "{}"), ("af/setting", "setting", "{}"), ("acc/test", "acc", "{:.3f}"),
    ("map/test", "mAP", "{:.3f}"), ("gflops/mean", "GFLOPs/video", "{:.4f}"), ("gflops/p50", "p50", "{:.4f}"),
    ("gflops/p95", "p95", "{:.4f}"), ("gmacs/mean", "GMACs/video", "{:.4f}"),
    ("flops/fraction_of_dense", "of dense", "{:.3f}"), ("frames/looked", "frames looked", "{:.1f}"),
    ("energy/per_video_j", "J/video", "{:.3g}"), ("energy/method", "energy method", "{}"),
    ("carbon/g_co2e", "gCO2e (eval)", "{:.3g}"),
]

# What `python -m experiments.run` prints at the end of a job, per task.
TASK_COLUMNS = {"lth": LTH_COLUMNS, "lth_transfer": [("lth/phase", "phase", "{}"), *LTH_COLUMNS],
                "moe": MOE_COLUMNS, "adaptive_frames": AF_COLUMNS}


@dataclass
class TableSpec:
    """A paper table: where its runs live, how rows group, which columns show, and its plot."""

    sweep: str  # the stored sweep (conf/sweep/<sweep>.yaml) whose folders this table reads
    group_by: list[str]
    columns: list[tuple[str, str, str]]
    caption: str
    plot: Callable[[list[dict], Path], None] | None = None
    sort_by: list[str] | None = None  # None: sort by group_by
    dedupe_by: list[str] = field(default_factory=list)  # rows equal on these keys count once (first kept)


def load_runs(paths: list[Path]) -> tuple[list[dict], list[str]]:
    """(rows of completed runs, descriptions of failed or unfinished job folders)."""
    rows, missing = [], []
    for root in paths:
        job_dirs = {p.parent for p in Path(root).rglob("config.yaml") if p.parent.name != ".hydra"}
        job_dirs |= {p.parent for p in Path(root).rglob("summary.json")}
        for job in sorted(job_dirs):
            summary_file = job / "summary.json"
            if not summary_file.exists():
                missing.append(f"{job}: unfinished (no summary.json)")
                continue
            summary = json.loads(summary_file.read_text())
            if summary["status"] != "completed":
                missing.append(f"{job}: failed: {summary.get('error')}")
                continue
            rows.extend({**r, "job_dir": str(job)} for r in summary["records"])
    return rows, missing


def _fmt(value, fmt: str) -> str:
    if value is None:
        return "—"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def dedupe(rows: list[dict], keys: list[str]) -> list[dict]:
    """The first row of each distinct value of `keys` (e.g. a baseline evaluated again by every job of a seed)."""
    seen, out = set(), []
    for r in rows:
        key = tuple(r.get(k) for k in keys)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def group(rows: list[dict], group_by: list[str]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in group_by), []).append(r)
    return groups


def aggregate(rows: list[dict], group_by: list[str], columns: list[str]) -> list[dict]:
    """Group rows by `group_by` keys; numeric columns become 'mean ± std (n)' strings."""
    out = []
    for key, members in group(rows, group_by).items():
        agg = dict(zip(group_by, key))
        for col in columns:
            if col in group_by:
                continue
            values = [m[col] for m in members if isinstance(m.get(col), (int, float))]
            if values:
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                agg[col] = f"{statistics.mean(values):.4g} ± {sd:.2g} (n={len(values)})"
            else:
                agg[col] = members[0].get(col)
        out.append(agg)
    return out


def render(rows: list[dict], columns: list[tuple[str, str, str]], fmt: str = "md") -> str:
    headers = [h for _, h, _ in columns]
    body = [[_fmt(r.get(k), f) for k, _, f in columns] for r in rows]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(headers)
        writer.writerows(body)
        return buf.getvalue()
    if fmt == "latex":
        lines = ["\\begin{tabular}{" + "l" * len(headers) + "}", " & ".join(headers) + " \\\\", "\\hline"]
        lines += [" & ".join(c.replace("%", "\\%").replace("±", "$\\pm$") for c in row) + " \\\\" for row in body]
        return "\n".join(lines + ["\\end{tabular}"])
    if fmt != "md":
        raise ValueError(f"--format {fmt!r} is not one of md, csv, latex")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def latest_sweep_folder(output_root: Path, sweep: str) -> Path:
    """The newest folder of a stored sweep: <output_root>/sweeps/<sweep>/<timestamp>."""
    base = output_root / "sweeps" / sweep
    folders = sorted(p for p in base.glob("*") if p.is_dir()) if base.exists() else []
    if not folders:
        raise FileNotFoundError(f"no runs of sweep {sweep!r} under {base}; run "
                                f"`python -m experiments.run sweep={sweep}` first, or pass --runs")
    return folders[-1]


def main(argv: list[str] | None = None) -> int:
    import experiments.paper_tables  # noqa: F401  (registers the named tables)

    parser = argparse.ArgumentParser(prog="leanlab-tables", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", nargs="?", help=f"a named table: {', '.join(TABLES.names())}")
    parser.add_argument("--runs", nargs="+", type=Path, help="run folders or folders containing them")
    parser.add_argument("--output-root", type=Path, default=Path("outputs"))
    parser.add_argument("--format", default="md", choices=["md", "csv", "latex"])
    parser.add_argument("--columns", default=None, help="comma-separated row keys (default: the LTH columns)")
    parser.add_argument("--group-by", default=None, help="comma-separated keys; aggregate mean ± std over the rest")
    parser.add_argument("--out", type=Path, help="folder to write table.md/.csv/.tex and plot.png into")
    args = parser.parse_args(argv)
    if args.table is None and not args.runs:
        parser.error("give a table name or --runs")
    spec = None
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
            parser.error(f"path {p} does not exist")
    rows, missing = load_runs(paths)
    columns = spec.columns if spec else LTH_COLUMNS
    if args.columns:
        columns = [(k, k, "{:.4g}") for k in args.columns.split(",")]
    group_by = args.group_by.split(",") if args.group_by else (spec.group_by if spec else [])
    if spec and spec.dedupe_by:
        rows = dedupe(rows, spec.dedupe_by)
    raw_rows = rows
    sort_by = (spec.group_by if spec.sort_by is None else spec.sort_by) if spec else []
    if sort_by:
        rows = sorted(rows, key=lambda r: tuple(r.get(k) for k in sort_by))
    if group_by:
        rows = aggregate(rows, group_by, [k for k, _, _ in columns])
        columns = [(k, h, "{}") for k, h, _ in columns]
    text = render(rows, columns, args.format)
    if spec:
        text = f"{spec.caption}\n\n{text}" if args.format == "md" else text
    print(text)
    for m in missing:
        print(f"missing: {m}", file=sys.stderr)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for fmt, ext in (("md", "md"), ("csv", "csv"), ("latex", "tex")):
            (args.out / f"table.{ext}").write_text(render(rows, columns, fmt) + "\n")
        if missing:
            (args.out / "missing.txt").write_text("\n".join(missing) + "\n")
        if spec and spec.plot and raw_rows:
            spec.plot(raw_rows, args.out / "plot.png")
    return 0 if rows or not missing else 1


if __name__ == "__main__":
    sys.exit(main())
