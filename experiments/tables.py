"""Aggregate run folders into a table (Markdown, CSV or LaTeX): `leanlab-tables outputs/ --format md`.

Reads every `summary.json` under the given paths. Failed or unfinished jobs are listed as missing, never as zeros.
With `--group-by` and `--mean`, rows are grouped and numeric columns reported as mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import sys
from pathlib import Path

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


def aggregate(rows: list[dict], group_by: list[str], columns: list[str]) -> list[dict]:
    """Group rows by `group_by` keys; numeric columns become 'mean ± std (n)' strings."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in group_by), []).append(r)
    out = []
    for key, members in groups.items():
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leanlab-tables", description=__doc__)
    parser.add_argument("paths", nargs="+", type=Path, help="run folders or folders containing them")
    parser.add_argument("--format", default="md", choices=["md", "csv", "latex"])
    parser.add_argument("--columns", default=None, help="comma-separated row keys (default: the LTH columns)")
    parser.add_argument("--group-by", default=None, help="comma-separated keys; aggregate mean ± std over the rest")
    args = parser.parse_args(argv)
    for p in args.paths:
        if not p.exists():
            parser.error(f"path {p} does not exist")
    rows, missing = load_runs(args.paths)
    columns = LTH_COLUMNS
    if args.columns:
        columns = [(k, k, "{:.4g}") for k in args.columns.split(",")]
    if args.group_by:
        group = args.group_by.split(",")
        rows = aggregate(rows, group, [k for k, _, _ in columns])
        columns = [(k, h, "{}") for k, h, _ in columns]
    print(render(rows, columns, args.format))
    for m in missing:
        print(f"missing: {m}", file=sys.stderr)
    return 0 if rows or not missing else 1


if __name__ == "__main__":
    sys.exit(main())
