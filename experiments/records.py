"""The run record (DESIGN.md): summary.json written atomically and last, metrics.jsonl appended per step.

The contract is code: `RECORD_KEYS` documents every row key (the README's table is generated from it),
`ROW_KEYS` are the ones every completed row must carry (`check_rows`, run by `write_summary`), and every JSON
file is strict: a NaN or ±Inf at any depth becomes `null`, with the reason in a sibling key `<key>__nonfinite`
(`"curve/val": [{"loss/val": null}]` beside `"curve/val__nonfinite": {"0/loss/val": "nan"}`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from experiments.record_keys import RECORD_KEYS, ROW_KEYS

__all__ = ["NONFINITE_SUFFIX", "RECORD_KEYS", "ROW_KEYS", "RecordError", "atomic_write_bytes", "atomic_write_json",
           "check_rows", "read_json", "run_id_of", "strict", "undocumented_keys", "write_summary"]

NONFINITE_SUFFIX = "__nonfinite"


class RecordError(ValueError):
    """A row breaks the run-record contract (a missing contract key)."""


def _scrub(value: Any, path: str, found: dict[str, str]) -> Any:
    """`value` with every non-finite float replaced by None; records `found[path] = "nan" | "inf" | "-inf"`."""
    if isinstance(value, float) and not math.isfinite(value):
        found[path] = str(value)
        return None
    if isinstance(value, dict):
        return {k: _scrub(v, f"{path}/{k}" if path else str(k), found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, f"{path}/{i}" if path else str(i), found) for i, v in enumerate(value)]
    return value


def strict(obj: Any) -> Any:
    """`obj` made strict-JSON-safe. In a dict, a key whose value holds NaN/±Inf gets `null` there and a sibling
    `<key>__nonfinite`: the reason ("nan") for a scalar, {path inside the value: reason} for a list; nested
    dicts get their own siblings."""
    if not isinstance(obj, dict):
        return _scrub(obj, "", {})
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            out[key] = strict(value)
            continue
        found: dict[str, str] = {}
        out[key] = _scrub(value, "", found)
        if found:
            out[f"{key}{NONFINITE_SUFFIX}"] = found.pop("") if "" in found else found
    return out


def check_rows(rows: list[dict]) -> None:
    """Raise RecordError naming the first row (index and unit) that lacks a contract key (ROW_KEYS)."""
    for i, row in enumerate(rows):
        missing = [k for k in ROW_KEYS if k not in row]
        if missing:
            unit = {k: row[k] for k in ("lth/level", "lth/kind", "af/method", "af/setting", "moe/ffn") if k in row}
            raise RecordError(f"record row {i} {unit or ''} lacks contract key(s) {missing} "
                              f"(every row carries {list(ROW_KEYS)}; see experiments/record_keys.py)")


def undocumented_keys(row: dict) -> list[str]:
    """Keys of `row` that RECORD_KEYS neither names nor matches as a pattern (`<i>`, `<name>` are wildcards)."""
    patterns = [k.replace("<i>", "*").replace("<name>", "*") for k in RECORD_KEYS]
    return [k for k in row if not k.endswith(NONFINITE_SUFFIX)
            and not any(k == p or fnmatch.fnmatchcase(k, p) for p in patterns)]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path` (mode: 0666 minus the umask,
    as `open` would give; mkstemp alone makes it 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    """Strict JSON (no NaN/Infinity tokens; see `strict`), written atomically."""
    text = json.dumps(strict(obj), indent=2, sort_keys=True, default=str, allow_nan=False)
    atomic_write_bytes(path, text.encode())


def run_id_of(job_dir: Path) -> str:
    """A run's id: hash of its folder's absolute path (row key `run_id`)."""
    return hashlib.md5(str(Path(job_dir).resolve()).encode()).hexdigest()[:10]


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def write_summary(job_dir: Path, status: str, records: list[dict], error: str | None = None, **extra) -> None:
    """summary.json is the last file written: a folder without it is an unfinished run. A completed summary's
    rows must carry every contract key (RecordError otherwise, and nothing is written)."""
    if status not in ("completed", "failed"):
        raise ValueError(f"status must be 'completed' or 'failed', got {status!r}")
    if status == "completed":
        check_rows(records)
    rows = [strict(row) for row in records]  # each row carries its own `__nonfinite` siblings
    atomic_write_json(Path(job_dir) / "summary.json", {"status": status, "error": error, "records": rows, **extra})
