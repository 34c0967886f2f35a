"""What a table is: its columns, its stored sweep, how rows group, its plot; and the two registries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from meter.registry import Registry


@dataclass(frozen=True)
class Column:
    """One shown column: the row key it reads, its header in words, the format of a number.

    `note`: when every row holds the same value, the column becomes one line under the table instead.
    """

    key: str
    header: str
    fmt: str = "{}"
    note: bool = False


# plot(rows, path, title): draw the completed rows of a table into the PNG at `path`.
Plot = Callable[[list[dict], Path, str], None]


@dataclass
class TableSpec:
    """A paper table: where its runs live, how rows group, which columns show, and its plot.

    `about` says what the table compares and what was published; what was run (data, model, steps, seeds)
    is read from the runs' configs into the caption, never written here.
    """

    sweep: str  # the stored sweep (conf/sweep/<sweep>.yaml) whose folders this table reads
    group_by: list[str]
    columns: list[Column]
    about: str
    plot: Plot
    sort_by: list[str] | None = None  # None: sort by group_by
    dedupe_by: list[str] = field(default_factory=list)  # rows equal on these keys count once (first kept)
    pool: list[str] = field(default_factory=list)  # config keys allowed to differ within one row
    # derive(rows) -> rows: the table's own rows made from the runs' rows (e.g. a pair per seed and its difference)
    derive: Callable[[list[dict]], list[dict]] | None = None
    # checks(rows, table) -> statements shown under the table: whether a published effect reproduces, computed
    # from the numbers
    checks: Callable[[list[dict], object], list[str]] | None = None


TABLES: Registry[TableSpec] = Registry("table")
# task name -> the columns printed (and written to <run folder>/table.md) at the end of a run of that task
RUN_COLUMNS: Registry[list[Column]] = Registry("run-table columns")
