"""Read run folders: every completed job's rows, each carrying its job's flattened config (`row["config"]`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# Config keys that never make two runs different configurations: the seed is what a row aggregates over, the
# rest change where and how a run reports, not what it computes.
NOT_CONFIGURATION = ("seed", "progress", "logger", "paths")
SWEEP_KEY = "sweep"  # pseudo config key: the sweep folder (holding multirun.yaml) a job was launched in


@dataclass
class Runs:
    rows: list[dict] = field(default_factory=list)  # completed jobs' records, plus "job_dir" and "config"
    missing: list[str] = field(default_factory=list)  # failed or unfinished job folders, with why


def flatten(cfg: dict, prefix: str = "") -> dict:
    """{"optim": {"steps": 5}} -> {"optim.steps": 5}; lists become JSON text so values stay hashable."""
    out = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value) if isinstance(value, list) else value
    return out


def job_config(job: Path, root: Path) -> dict:
    """The job's configuration as flat dotted keys (without NOT_CONFIGURATION), plus the sweep it ran in."""
    config_file = job / "config.yaml"
    try:
        cfg = yaml.safe_load(config_file.read_text()) if config_file.exists() else {}
    except yaml.YAMLError as e:
        raise ValueError(f"{config_file} is not valid YAML ({e}); fix or remove that run folder") from None
    flat = {k: v for k, v in flatten(cfg or {}).items() if k.split(".")[0] not in NOT_CONFIGURATION}
    sweep = next((p for p in [job, *job.parents] if (p / "multirun.yaml").exists()), None)
    if sweep is not None:
        flat[SWEEP_KEY] = str(sweep.resolve())
    return flat


def _shorten_sweeps(rows: list[dict]) -> None:
    """Sweep folders named relative to the folder that holds them all (a sweep's own name when only one)."""
    sweeps = {r["config"][SWEEP_KEY] for r in rows if SWEEP_KEY in r["config"]}
    common = os.path.commonpath(sweeps) if len(sweeps) > 1 else None
    for r in rows:
        if SWEEP_KEY in r["config"]:
            path = r["config"][SWEEP_KEY]
            r["config"][SWEEP_KEY] = os.path.relpath(path, common) if common else Path(path).name


def load_runs(paths: list[Path]) -> Runs:
    """Completed runs' rows and a description of every failed or unfinished job folder under `paths`."""
    runs = Runs()
    for root in map(Path, paths):
        job_dirs = {p.parent for p in root.rglob("config.yaml") if p.parent.name != ".hydra"}
        job_dirs |= {p.parent for p in root.rglob("summary.json")}
        for job in sorted(job_dirs):
            summary_file = job / "summary.json"
            if not summary_file.exists():
                runs.missing.append(f"{job}: unfinished (no summary.json)")
                continue
            try:
                summary = json.loads(summary_file.read_text())
            except json.JSONDecodeError as e:
                runs.missing.append(f"{job}: unreadable summary.json ({e})")
                continue
            if summary.get("status") != "completed":
                runs.missing.append(f"{job}: failed: {summary.get('error')}")
                continue
            config = job_config(job, root)
            runs.rows.extend({**r, "job_dir": str(job), "config": dict(config)} for r in summary["records"])
    _shorten_sweeps(runs.rows)
    return runs


def dedupe(rows: list[dict], keys: list[str]) -> list[dict]:
    """The first row of each distinct value of `keys` (e.g. a baseline evaluated again by every job of a seed).

    A config value that differs among a row's duplicates does not matter to that row: it is dropped from the
    kept row's config, so it cannot split the row from its peers later.
    """
    kept: dict[tuple, dict] = {}
    for r in rows:
        key = tuple(r.get(k) for k in keys)
        if key not in kept:
            kept[key] = {**r, "config": dict(r.get("config", {}))}
            continue
        first = kept[key]["config"]
        for name in [n for n in first if r.get("config", {}).get(n) != first[n]]:
            del first[name]
    return list(kept.values())
