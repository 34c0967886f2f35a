"""Rows -> a table: group by the spec's keys and by every config value that differs, mean/std/n per metric."""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from experiments.tables.spec import Column

RUNS = Column("runs", "runs")  # how many runs (seeds) a row holds
SEED = Column("seed", "seed", note=True)
WILDCARD = object()  # a config value a row does not depend on (see runs.dedupe)


@dataclass(frozen=True)
class Stat:
    """mean and sample std (ddof=1; 0 for one value) of a metric over the `n` runs of a row that have it."""

    mean: float
    std: float
    n: int


@dataclass
class Table:
    columns: list[Column]  # every column (a CSV shows them all)
    rows: list[dict]  # cells: Stat for aggregated metrics, plain values otherwise
    aggregated: bool = False
    split_by: list[str] = field(default_factory=list)  # config keys that made separate rows
    warnings: list[str] = field(default_factory=list)  # e.g. one seed twice in a row
    noted: list[Column] = field(default_factory=list)  # `note` columns one value fills: a line under the table
    statements: list[str] = field(default_factory=list)  # the spec's checks: lines under the table

    @property
    def shown(self) -> list[Column]:
        """The columns a Markdown or LaTeX table shows: not the noted ones (lines under it), nor a column no row
        has a value in (e.g. mAP beside accuracy)."""
        return [c for c in self.columns
                if c not in self.noted and any(r.get(c.key) is not None for r in self.rows)]

    @property
    def notes(self) -> list[str]:
        return [f"{c.header}: {self.rows[0][c.key]} (every row)" for c in self.noted
                if self.rows[0].get(c.key) is not None] + self.statements


def sort_key(value) -> tuple:
    """Order numbers, then text, then missing values, without comparing across types."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value, "")
    return (2, 0, "") if value is None else (1, 0, str(value))


def number(value) -> float | None:
    """A finite-or-not float for a metric value (records store NaN/Inf as text); None if not a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.lower() in ("nan", "inf", "-inf"):
        return float(value)
    return None


def group(rows: list[dict], keys: list[str]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in keys), []).append(r)
    return groups


def config_value(row: dict, key: str):
    return row.get("config", {}).get(key, WILDCARD)


def differing_config(rows: list[dict], group_by: list[str], pool: list[str]) -> list[str]:
    """Config keys whose value differs between rows that `group_by` alone would pool (wildcards aside)."""
    out: set[str] = set()
    for members in group(rows, group_by).values():
        keys = set().union(*(r.get("config", {}) for r in members))
        for key in keys - set(pool):
            if len({repr(v) for r in members if (v := config_value(r, key)) is not WILDCARD}) > 1:
                out.add(key)
    return sorted(out)


def variant(row: dict, split_by: list[str]) -> str:
    """'optim.steps=2000, sweep=a' for the config keys that split rows ('' when none do)."""
    parts = [f"{k}={v}" for k in split_by if (v := config_value(row, k)) is not WILDCARD]
    return ", ".join(parts)


def _summarise(values: list) -> Stat | object:
    numbers = [x for v in values if (x := number(v)) is not None]
    if numbers:
        std = statistics.stdev(numbers) if len(numbers) > 1 and all(map(math.isfinite, numbers)) else 0.0
        return Stat(statistics.fmean(numbers), std if len(numbers) > 1 else 0.0, len(numbers))
    distinct = list(dict.fromkeys(v for v in values if v is not None))
    return "; ".join(map(str, distinct)) if len(distinct) > 1 else (distinct[0] if distinct else None)


def _noted(table_rows: list[dict], columns: list[Column]) -> list[Column]:
    """`note` columns that hold one and the same plain value in every row."""
    return [c for c in columns if c.note and table_rows and not isinstance(table_rows[0].get(c.key), Stat)
            and len({repr(r.get(c.key)) for r in table_rows}) == 1]


def build_table(rows: list[dict], columns: list[Column], group_by: list[str], pool: list[str] = (),
                sort_by: list[str] | None = None) -> Table:
    """Aggregate rows over seeds when `group_by` is given (else one table row per run, with its seed).

    Runs whose configs differ in a value not in `pool` never share a table row: each differing config key
    becomes a grouping key and a column.
    """
    split_by = differing_config(rows, group_by, list(pool))
    split_cols = [Column(k, k) for k in split_by]
    rows = [{**r, **{k: None if (v := config_value(r, k)) is WILDCARD else v for k in split_by}} for r in rows]
    order = (sort_by if sort_by is not None else group_by) + split_by
    rows = sorted(rows, key=lambda r: tuple(sort_key(r.get(k)) for k in order))
    shown = [c for c in columns if c.key not in group_by and c.key not in split_by]
    if not group_by:
        lead = [] if any(c.key == "seed" for c in shown) else [SEED]
        out = [*split_cols, *lead, *shown]
        return Table(out, rows, aggregated=False, split_by=split_by, noted=_noted(rows, out))
    keys = list(group_by) + split_by
    table_rows, warnings = [], []
    for key, members in group(rows, keys).items():
        cells = dict(zip(keys, key))
        cells[RUNS.key] = len(members)
        seeds = [m.get("seed") for m in members]
        if len(set(seeds)) < len(seeds):
            warnings.append(f"row {key} holds a seed more than once ({sorted(seeds, key=sort_key)}; jobs "
                            f"{sorted({m.get('job_dir') for m in members})}): a copied or repeated run?")
        cells.update({c.key: _summarise([m.get(c.key) for m in members]) for c in shown})
        table_rows.append(cells)
    lead = [c for c in columns if c.key in group_by] + [Column(k, k) for k in group_by
                                                         if k not in {c.key for c in columns}]
    out = [*lead, *split_cols, RUNS, *shown]
    return Table(out, table_rows, aggregated=True, split_by=split_by, warnings=warnings,
                 noted=_noted(table_rows, out))


# What the caption names from the runs' configs: (words, config key).
CAPTION_KEYS = [("experiment", "name"), ("data", "data.name"), ("data file", "data.path"), ("model", "model.name"),
                ("optimiser", "optim.name"), ("steps", "optim.steps"), ("epochs", "optim.epochs")]
ERROR_BARS = ("Each cell is the mean ± sample standard deviation (ddof=1) over the runs (seeds) of its row; "
              "the runs column says how many; one run, or seeds that agree exactly, show the value alone; the "
              "plot's error bars are the same standard deviation.")


def job_names(rows: list[dict]) -> dict[str, str]:
    """Each row's job folder named by its path below the folders' common parent (`ps/s0`, not an ambiguous `s0`)."""
    folders = sorted({str(r.get("job_dir")) for r in rows})
    if len(folders) < 2:
        return {f: Path(f).name for f in folders}
    common = os.path.commonpath(folders)
    return {f: os.path.relpath(f, common) if f != common else Path(f).name for f in folders}


def predating(rows: list[dict]) -> str:
    """' Runs that predate a config key ran with its default: KEY=VALUE (N jobs: a, b, ...).' or ''."""
    jobs: dict[tuple, set] = {}
    for r in rows:
        for key, value in (r.get("config_defaulted") or {}).items():
            jobs.setdefault((key, repr(value)), set()).update(r.get("jobs_defaulted") or [r.get("job_dir")])
    if not jobs:
        return ""
    named = job_names([{"job_dir": f} for folders in jobs.values() for f in folders])
    parts = []
    for (key, value), folders in sorted(jobs.items()):
        names = sorted(named[str(f)] for f in folders)
        parts.append(f"{key}={value} ({len(names)} job{'s' * (len(names) > 1)}: {', '.join(names[:4])}"
                     f"{', ...' if len(names) > 4 else ''})")
    return " Runs that predate a config key ran with its schema default: " + "; ".join(parts) + "."


def overlapped(rows: list[dict]) -> str:
    """' Energy metered beside other jobs ... (N jobs: a, b, ...).' or '' (meter.peers: energy/overlapping_jobs)."""
    named = job_names(rows)
    folders = sorted({named[str(r.get("job_dir"))] for r in rows if number(r.get("energy/overlapping_jobs"))})
    if not folders:
        return ""
    return (f" Energy of {len(folders)} job{'s' * (len(folders) > 1)} ({', '.join(folders[:4])}"
            f"{', ...' if len(folders) > 4 else ''}) was metered while other jobs ran on the same host "
            "(energy/overlapping_jobs > 0): each of their figures holds the host's whole shared (idle) power, so "
            "those energy cells are upper bounds, and a sum over them counts the shared power more than once.")


def caption(rows: list[dict], table: Table, about: str = "", records: list[dict] | None = None) -> str:
    """What was run, read from the runs' configs, what a cell means, then the table's own description.
    `records`: the runs' own records when `rows` were derived from them (paired tables), for their energy labels."""
    parts = []
    for words, key in CAPTION_KEYS:
        values = sorted({v for r in rows if (v := config_value(r, key)) not in (WILDCARD, None)}, key=sort_key)
        if values:
            parts.append(f"{words} {' or '.join(map(str, values))}")
    seeds = sorted({r.get("seed") for r in rows if r.get("seed") is not None}, key=sort_key)
    if seeds:
        parts.append(f"seeds {', '.join(map(str, seeds))}")
    text = f"Runs: {'; '.join(parts) or 'no config.yaml found'} ({len({r.get('job_dir') for r in rows})} jobs)."
    if table.split_by:
        text += (f" Rows also differ in {', '.join(table.split_by)}: these config values differ between the runs, "
                 "so they are not pooled (--pool KEY pools them).")
    text += predating(rows) + overlapped(rows if records is None else records)
    text += f" {ERROR_BARS}" if table.aggregated else " One row per run, not aggregated."
    return f"{text} {about}".strip()
