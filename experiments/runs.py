"""Find and compare past runs: `leanlab-runs list|find|diff` (or `python -m experiments.runs ...`).

  list [ROOT] [--where KEY=VALUE ...]   one line per run folder under ROOT: experiment, status, config_hash,
                                        seed, rows, headline metric, overrides (from .hydra/overrides.yaml)
  find HASH [ROOT] [--where ...]        runs whose config_hash starts with HASH (open_lth-style lookup)
  diff A B                              the config keys (flattened, dotted) whose values differ between two runs

A run folder is one holding `run.json`, `summary.json` or `config.yaml` (what experiments.run writes).
`--where optim.lr=0.01` keeps runs whose resolved config has that value (compared as YAML scalars).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

MARKERS = ("run.json", "summary.json", "config.yaml")
HEADLINE = ("acc/test", "bpc/test", "mse/test", "map/test")  # the first one a run's rows carry is shown


@dataclass
class RunInfo:
    path: str
    experiment: str | None = None
    status: str = "unfinished"  # completed | failed | unfinished (no summary.json: running, killed or preempted)
    config_hash: str | None = None
    seed: int | None = None
    rows: int = 0
    headline: dict[str, float | None] = field(default_factory=dict)  # metric: the last row's; "max metric"
    overrides: list[str] = field(default_factory=list)


def _load(path: Path, loader) -> dict:
    try:
        return loader(path.read_text()) or {} if path.exists() else {}
    except (OSError, ValueError, yaml.YAMLError):
        return {}


def flatten(obj, prefix: str = "") -> dict:
    """{"optim": {"lr": 0.1}} -> {"optim.lr": 0.1}; lists stay values."""
    if not isinstance(obj, dict):
        return {prefix: obj}
    out = {}
    for key, value in obj.items():
        out |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return out


def config_of(run_dir: Path) -> dict:
    """The run's resolved config, flattened."""
    return flatten(_load(Path(run_dir) / "config.yaml", yaml.safe_load))


def read_run(run_dir: Path) -> RunInfo:
    run_dir = Path(run_dir)
    owner = _load(run_dir / "run.json", json.loads)
    summary = _load(run_dir / "summary.json", json.loads)
    records = summary.get("records") or []
    info = RunInfo(path=str(run_dir), status=summary.get("status", "unfinished"), rows=len(records))
    for source in (owner, summary, records[-1] if records else {}):
        info.experiment = info.experiment or source.get("experiment")
        info.config_hash = info.config_hash or source.get("config_hash")
        info.seed = info.seed if info.seed is not None else source.get("seed")
    if info.experiment is None:
        info.experiment = config_of(run_dir).get("name")
    if records:
        metric = next((k for k in HEADLINE if k in records[-1] and records[-1][k] is not None), None)
        values = [r[metric] for r in records if isinstance(r.get(metric), (int, float))] if metric else []
        if metric:
            info.headline = {metric: records[-1][metric]} | ({f"max {metric}": max(values)} if len(values) > 1 else {})
    overrides = _load(run_dir / ".hydra" / "overrides.yaml", yaml.safe_load)
    info.overrides = [str(o) for o in overrides if not str(o).startswith(("hydra.", "paths."))] if overrides else []
    return info


def find_runs(root: Path) -> list[Path]:
    """Run folders under `root` (itself included), sorted by path."""
    root = Path(root)
    found = {p.parent for name in MARKERS for p in root.rglob(name)
             if p.parent.name != ".hydra" and "levels" not in p.relative_to(root).parts}
    return sorted(found)


def _matches(run_dir: Path, where: list[tuple[str, object]]) -> bool:
    if not where:
        return True
    config = config_of(run_dir)
    return all(key in config and config[key] == value for key, value in where)


def _parse_where(items: list[str]) -> list[tuple[str, object]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--where {item!r}: expected KEY=VALUE, e.g. optim.lr=0.01")
        out.append((key, yaml.safe_load(value)))
    return out


def diff(a: Path, b: Path) -> dict[str, tuple]:
    """{key: (value in a, value in b)} for every flattened config key that differs (missing: "<absent>")."""
    ca, cb = config_of(a), config_of(b)
    for path, config in ((a, ca), (b, cb)):
        if not config:
            raise SystemExit(f"runs diff: {path} has no config.yaml (not a run folder?)")
    absent = "<absent>"
    return {k: (ca.get(k, absent), cb.get(k, absent)) for k in sorted(ca.keys() | cb.keys())
            if ca.get(k, absent) != cb.get(k, absent)}


def format_table(infos: list[RunInfo], root: Path) -> str:
    header = ["run", "experiment", "status", "config_hash", "seed", "rows", "headline", "overrides"]
    table = [header]
    for i in infos:
        shown = Path(i.path).relative_to(root) if Path(i.path).is_relative_to(root) else Path(i.path)
        headline = " ".join(f"{k}={v:.4g}" for k, v in i.headline.items())
        table.append([str(shown), str(i.experiment), i.status, str(i.config_hash), str(i.seed), str(i.rows),
                      headline, " ".join(i.overrides)])
    widths = [max(len(r[c]) for r in table) for c in range(len(header) - 1)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)) + "  " + r[-1] for r in table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leanlab-runs", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (("list", "one line per run folder under ROOT"),
                           ("find", "runs whose config_hash starts with HASH")):
        p = sub.add_parser(name, help=helptext)
        if name == "find":
            p.add_argument("hash", help="a config_hash or its prefix")
        p.add_argument("root", nargs="?", default="outputs", help="output root to search (default: outputs)")
        p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                       help="keep runs whose resolved config has KEY=VALUE (repeatable)")
        p.add_argument("--json", action="store_true", help="one JSON object per run instead of a table")
    p = sub.add_parser("diff", help="config differences between two run folders")
    p.add_argument("a")
    p.add_argument("b")
    args = parser.parse_args(argv)

    if args.command == "diff":
        for key, (va, vb) in diff(Path(args.a), Path(args.b)).items():
            print(f"{key}: {va!r} -> {vb!r}")
        return 0
    root = Path(args.root)
    if not root.is_dir():
        print(f"leanlab-runs: {root} is not a folder (pass the output root, e.g. outputs)", file=sys.stderr)
        return 2
    where = _parse_where(args.where)
    infos = [read_run(d) for d in find_runs(root) if _matches(d, where)]
    if args.command == "find":
        infos = [i for i in infos if i.config_hash and i.config_hash.startswith(args.hash)]
    if args.json:
        for info in infos:
            print(json.dumps(asdict(info)))
    elif infos:
        print(format_table(infos, root))
    return 0 if infos or args.command == "list" else 1


if __name__ == "__main__":
    sys.exit(main())
