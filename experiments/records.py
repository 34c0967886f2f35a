"""The run record (DESIGN.md): summary.json written atomically and last, metrics.jsonl appended per step."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

# Keys every row carries (DESIGN.md, "The run record").
ROW_KEYS = (
    "experiment", "run_id", "seed", "config_hash",
    "acc/test", "flops/train_total", "flops/infer_per_sample", "flops/infer_per_sample_dense",
    "energy/joules", "energy/kwh", "energy/method",
    "carbon/g_co2e", "carbon/intensity_g_per_kwh", "carbon/intensity_source", "carbon/pue",
    "time/wall_s", "params/total", "params/nonzero",
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/Inf; keep them visible as strings
    return value


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable).encode())


def read_json(path: Path) -> Any:
    """Parse a JSON file; a truncated or corrupt one raises CorruptFileError naming it and what to do."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        from experiments.errors import CorruptFileError

        raise CorruptFileError(path, f"not valid JSON: {e}", "delete it to recompute what it records, or rerun "
                               "into a new hydra.run.dir") from None


def write_summary(job_dir: Path, status: str, records: list[dict], error: str | None = None, **extra) -> None:
    """summary.json is the last file written: a folder without it is an unfinished run."""
    if status not in ("completed", "failed"):
        raise ValueError(f"status must be 'completed' or 'failed', got {status!r}")
    rows = [{k: _jsonable(v) for k, v in row.items()} for row in records]
    atomic_write_json(Path(job_dir) / "summary.json", {"status": status, "error": error, "records": rows, **extra})


def missing_row_keys(row: dict) -> list[str]:
    return [k for k in ROW_KEYS if k not in row]
