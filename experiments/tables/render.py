"""A Table as Markdown (with its notes), CSV (numbers only: mean, std, n in their own columns) or LaTeX."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

from experiments.records import atomic_write_bytes
from experiments.tables.build import Stat, Table, build_table
from experiments.tables.columns import DEFAULT_RUN_COLUMNS
from experiments.tables.spec import RUN_COLUMNS, Column

log = logging.getLogger(__name__)
MISSING = "—"


def cell_text(value, column: Column, runs: int | None = None) -> str:
    """'0.632 ± 0.010' for a Stat of n > 1 runs, '0.632' for one; '(n=2)' when fewer runs than the row has."""
    if value is None:
        return MISSING
    if isinstance(value, Stat):
        fmt = "{:.4g}" if column.fmt == "{}" else column.fmt
        text = cell_text(value.mean, Column(column.key, column.header, fmt))
        if value.n > 1 and value.std != 0:  # seeds that agree exactly show the value alone (`runs` says how many)
            text += f" ± {cell_text(value.std, Column(column.key, column.header, fmt.replace('+', '')))}"
        return text + (f" (n={value.n})" if runs is not None and value.n != runs else "")
    try:
        return column.fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def _body(table: Table) -> list[list[str]]:
    return [[cell_text(r.get(c.key), c, r.get("runs")) for c in table.shown] for r in table.rows]


def to_markdown(table: Table, caption: str = "") -> str:
    lines = [caption, ""] if caption else []
    lines += ["| " + " | ".join(c.header for c in table.shown) + " |", "|" + "---|" * len(table.shown)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in _body(table)]
    return "\n".join(lines + ([""] + [f"- {n}" for n in table.notes] if table.notes else []))


def _stat_columns(table: Table) -> set[str]:
    return {c.key for c in table.columns if any(isinstance(r.get(c.key), Stat) for r in table.rows)}


def to_csv(table: Table) -> str:
    """Every column, raw keys as headers; an aggregated metric is three numeric columns KEY/mean, /std, /n."""
    stats = _stat_columns(table)
    header = [h for c in table.columns for h in ([f"{c.key}/mean", f"{c.key}/std", f"{c.key}/n"]
                                                   if c.key in stats else [c.key])]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for r in table.rows:
        row = []
        for c in table.columns:
            value = r.get(c.key)
            if c.key in stats:
                if isinstance(value, Stat):  # one value has no sample std: an empty cell, not a misleading 0
                    row += [value.mean, value.std if value.n > 1 else "", value.n]
                else:
                    row += ["", "", 0]
            else:
                row.append("" if value is None else value)
        writer.writerow(row)
    return buf.getvalue()


# Characters LaTeX treats as commands or needs in math mode, and their text-mode spelling.
LATEX_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "±": r"$\pm$", "—": "--", "–": "--", "×": r"$\times$", "≈": r"$\approx$", "≥": r"$\geq$", "≤": r"$\leq$",
    "µ": r"$\mu$", "²": r"$^2$", "·": r"$\cdot$",
}


def latex_escape(text: str) -> str:
    return "".join(LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def to_latex(table: Table, caption: str = "") -> str:
    """A `table` float: the caption (notes appended) above a tabular; every cell and header escaped."""
    shown = table.shown
    text = " ".join([caption, *[f"{n}." for n in table.notes]]).strip()
    lines = ["\\begin{table}", "\\centering"] + ([f"\\caption{{{latex_escape(text)}}}"] if text else [])
    lines += ["\\begin{tabular}{" + "l" * len(shown) + "}", "\\hline",
              " & ".join(latex_escape(c.header) for c in shown) + " \\\\", "\\hline"]
    lines += [" & ".join(latex_escape(cell) for cell in row) + " \\\\" for row in _body(table)]
    return "\n".join(lines + ["\\hline", "\\end{tabular}", "\\end{table}"])


def write_run_table(job_dir: Path, rows: list[dict], task: str) -> str:
    """The end-of-run table of a task's rows as Markdown, written to <job_dir>/table.md; returns the text."""
    columns = RUN_COLUMNS.get(task) if task in RUN_COLUMNS else DEFAULT_RUN_COLUMNS
    text = to_markdown(build_table(rows, columns, group_by=[]))
    try:
        atomic_write_bytes(Path(job_dir) / "table.md", (text + "\n").encode())
    except OSError as e:  # the run itself completed; its summary.json holds the rows
        log.warning("could not write %s: %s", Path(job_dir) / "table.md", e)
    return text
