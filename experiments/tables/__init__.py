"""Aggregate run folders into paper tables (Markdown, CSV, LaTeX) and their plots (`leanlab-tables`).

Layout: `spec` (Column, TableSpec, the TABLES and RUN_COLUMNS registries), `columns` (each task's columns),
`runs` (reading run folders), `build` (grouping and statistics), `render` (md/csv/tex, the run folder's
table.md), `plots`, `paper` (the named tables), `ofa`, `ofa_predictor` and
`ofa_plots` (the once-for-all tables), `cli`. Importing the package registers every table.
"""

from experiments.tables import columns as columns  # noqa: F401  (registers RUN_COLUMNS)
from experiments.tables import ofa as ofa  # noqa: F401  (registers the once-for-all TABLES)
from experiments.tables import ofa_predictor as ofa_predictor  # noqa: F401  (registers the predictor table)
from experiments.tables import paper as paper  # noqa: F401  (registers TABLES)
from experiments.tables.build import Stat, Table, build_table, caption
from experiments.tables.cli import main
from experiments.tables.render import to_csv, to_latex, to_markdown, write_run_table
from experiments.tables.runs import Runs, dedupe, load_runs
from experiments.tables.spec import RUN_COLUMNS, TABLES, Column, TableSpec

__all__ = ["RUN_COLUMNS", "TABLES", "Column", "Runs", "Stat", "Table", "TableSpec", "build_table", "caption",
           "dedupe", "load_runs", "main", "to_csv", "to_latex", "to_markdown", "write_run_table"]
