"""Checkpoints: torch.save of plain state (tensors, numbers, strings), written atomically, loaded weights_only."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from experiments.records import atomic_write_bytes


class CheckpointError(RuntimeError):
    pass


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load with weights_only=True: arbitrary pickled objects are refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        raise CheckpointError(f"cannot load checkpoint {path}: {type(e).__name__}: {e}") from e
