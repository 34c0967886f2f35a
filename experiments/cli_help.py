"""`python -m experiments.run --help`: experiments, sweeps, debug modes and groups read from conf/, the meter's
options from MeterConfig's fields, and the exit codes; nothing here is a hand-kept list that can drift."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

from experiments.errors import EXIT_CODES
from experiments.suggest import public
from meter import MeterConfig

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
LISTED = ("experiment", "sweep", "debug")  # groups shown with one line per option
HIDDEN = ("hydra",)


def description(path: Path) -> str:
    """A config file's `# description:` line, else its first comment line that is not a package directive."""
    comments = [line.lstrip("#").strip() for line in path.read_text().splitlines() if line.startswith("#")]
    for line in comments:
        if line.startswith("description:"):
            return line.removeprefix("description:").strip()
    return next((c for c in comments if c and not c.startswith("@package")), "")


def options(group: str) -> list[str]:
    return public(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _table(rows: list[tuple[str, str]], indent: int = 2) -> list[str]:
    width = max((len(a) for a, _ in rows), default=0)
    return [f"{' ' * indent}{a.ljust(width)}  {b}".rstrip() for a, b in rows]


def _source_comments(cls: type) -> dict[str, str]:
    """`name: type = default  # comment` lines of a dataclass's source: the help where metadata has none."""
    found = {}
    for line in inspect.getsource(cls).splitlines():
        match = re.match(r"\s+(\w+):[^#]*#\s*(.+)$", line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def meter_rows() -> list[tuple[str, str]]:
    comments = _source_comments(MeterConfig)
    rows = []
    for f in dataclasses.fields(MeterConfig):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "(required)"
        rows.append((f"meter.{f.name}={default}", f.metadata.get("help") or comments.get(f.name, "")))
    return rows


def render() -> str:
    lines = ["leanlab: python -m experiments.run [experiment=NAME] [GROUP=OPTION ...] [KEY=VALUE ...] [-m]",
             "  (console script: leanlab). Defaults run the main job, lth_mnist1d.", ""]
    titles = {"experiment": "Experiments (experiment=NAME)", "sweep": "Stored sweeps (sweep=NAME, one per table)",
              "debug": "Debug modes (debug=NAME; your own KEY=VALUE overrides win over its caps)"}
    for group in LISTED:
        lines += [titles[group] + ":", *_table([(o, description(CONF_DIR / group / f"{o}.yaml"))
                                                for o in options(group)]), ""]
    groups = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in LISTED + HIDDEN)
    lines += ["Config groups (GROUP=OPTION):", *_table([(g, ", ".join(options(g))) for g in groups]), ""]
    lines += ["Meter options (KEY=VALUE; see meter/config.py):", *_table(meter_rows()), ""]
    lines += ["Exit codes:", *_table([(str(code), kind) for kind, code in sorted(EXIT_CODES.items(),
                                                                                key=lambda kv: kv[1])]), ""]
    lines += ["More: --cfg job prints the composed config; --hydra-help lists Hydra's own options;",
              "a typo fails before any work with a suggestion."]
    return "\n".join(lines)
