"""Checkpoints: torch.save of plain state (tensors, numbers, strings), written atomically, loaded weights_only.

`save_checkpoint` keeps the previous good checkpoint as `<name>.prev` until the new one is complete (temp file +
fsync + rename). `load_checkpoint` refuses pickled objects; `load_latest` falls back to `.prev` when the newest
file is truncated or corrupt, says so naming the file, and never starts from scratch silently.
"""

from __future__ import annotations

import io
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.errors import CorruptFileError
from experiments.records import atomic_write_bytes

log = logging.getLogger(__name__)


class CheckpointError(CorruptFileError):
    """A checkpoint that cannot be loaded; the message names the file and what to do."""


REMEDY = ("delete it to recompute what it held (the unit that wrote it restarts), or rerun into a new "
          "hydra.run.dir")
TEMP_GLOB = ".*.tmp"  # experiments.records.atomic_write_bytes's temp files


def remove_stale_temps(folder: Path) -> int:
    """Delete temp files of interrupted atomic writes under `folder` (call only while holding its lock)."""
    stale = [p for p in Path(folder).rglob(TEMP_GLOB) if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        log.info("removed %d temp file(s) of interrupted writes under %s", len(stale), folder)
    return len(stale)


def previous(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".prev")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    if path.exists():
        os.replace(path, previous(path))  # a crash from here on leaves .prev, which load_latest uses
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load with weights_only=True: arbitrary pickled objects are refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        raise CheckpointError(path, f"cannot load checkpoint: {type(e).__name__}: {e}", REMEDY) from e


def exists(path: Path) -> bool:
    return Path(path).exists() or previous(path).exists()


def load_latest(path: Path) -> dict[str, Any]:
    """The newest loadable of `path` and `path.prev`; raises CheckpointError naming both if neither loads."""
    errors = []
    for candidate in (Path(path), previous(path)):
        if not candidate.exists():
            continue
        try:
            state = load_checkpoint(candidate)
        except CheckpointError as e:
            log.error("%s; trying the previous checkpoint", e)
            errors.append(str(e))
            continue
        if candidate != Path(path):
            log.warning("resuming from the previous good checkpoint %s", candidate)
        return state
    raise CheckpointError(path, "no loadable checkpoint: " + "; ".join(errors or ["it does not exist"]),
                          f"delete it and {previous(path).name} to restart that unit, or rerun into a new "
                          "hydra.run.dir")


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states in a weights_only-loadable form."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(internal), gauss], "torch": torch.get_rng_state(),
            "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached": float(cached)}}


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
