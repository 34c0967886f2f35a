"""Loggers: `local` (metrics.jsonl, always on) and `wandb` (opt-in, imported lazily, never required).

Every logger is a `Logger`. A unit of work (one IMP level x kind, one AF method, one MoE model) is bracketed by
`start_unit` (the trainer, with the checkpoint's log position on resume) and `end_unit` (RunContext.add_row, with
the unit's row): metrics.jsonl drops what the checkpoint does not cover, and W&B gets one run per unit.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Protocol, runtime_checkable

from omegaconf import DictConfig, OmegaConf

from experiments.records import run_id_of, strict
from meter.registry import Registry

log = logging.getLogger(__name__)
LOGGERS: Registry = Registry("logger")


@runtime_checkable
class Logger(Protocol):
    log_every: int  # steps between training-loss rows; 0 = none

    def log(self, row: dict, step: int | None = None) -> None: ...

    def position(self) -> int:
        """Where the log ends now (saved in checkpoints)."""

    def truncate(self, position: int) -> None:
        """Drop what was logged after `position`."""

    def start_unit(self, unit: str, position: int | None) -> None:
        """A unit starts (position: its checkpoint's log position on resume; None: fresh start)."""

    def end_unit(self, unit: str, row: dict) -> None:
        """A unit finished with `row` (its summary.json row)."""

    def log_records(self, rows: list[dict]) -> None: ...

    def finish(self, status: str) -> None: ...


class NullLogger:
    """Logs nothing (ranks other than 0, library use without a run folder)."""

    log_every = 0

    def log(self, row: dict, step: int | None = None) -> None:
        pass

    def position(self) -> int:
        return 0

    def truncate(self, position: int) -> None:
        pass

    def start_unit(self, unit: str, position: int | None) -> None:
        pass

    def end_unit(self, unit: str, row: dict) -> None:
        pass

    def log_records(self, rows: list[dict]) -> None:
        pass

    def finish(self, status: str) -> None:
        pass


class LogOnly(NullLogger):
    """A `Logger` around an object that only has `log(row, step)` (a library user's or a test's)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def log(self, row: dict, step: int | None = None) -> None:
        self.inner.log(row, step)


def as_logger(obj) -> Logger:
    if isinstance(obj, Logger):
        return obj
    if callable(getattr(obj, "log", None)):
        return LogOnly(obj)
    raise TypeError(f"logger {obj!r} has no log(row, step) method; pass an experiments.loggers.Logger")


class LocalLogger(NullLogger):
    """Appends one JSON object per logged step to metrics.jsonl; summary rows go to summary.json (records.py)."""

    def __init__(self, job_dir: Path, cfg, full_cfg: DictConfig, group: str | None) -> None:
        self.path = Path(job_dir) / "metrics.jsonl"
        self.log_every = cfg.log_every
        self._file = open(self.path, "a+b")

    def log(self, row: dict, step: int | None = None) -> None:
        line = json.dumps(strict({**row, "step": step}), default=str, allow_nan=False) + "\n"
        self._file.write(line.encode())
        self._file.flush()

    def position(self) -> int:
        """Byte offset of the end of metrics.jsonl (saved in checkpoints)."""
        return self._file.seek(0, os.SEEK_END)

    def truncate(self, position: int) -> None:
        """On resume, drop the rows logged after the checkpoint, so each step appears once."""
        self._file.truncate(position)
        self._file.seek(position)

    def unit_tail(self, unit: str) -> int:
        """Offset where the trailing rows of `unit` (and a torn last line) begin: what a kill before the unit's
        first checkpoint left behind."""
        self._file.seek(0)
        lines = self._file.read().split(b"\n")
        end = sum(len(line) + 1 for line in lines[:-1])  # the last element is a torn line or b""
        for line in reversed(lines[:-1]):
            try:
                if json.loads(line).get("unit") != unit:
                    break
            except ValueError:
                pass  # a torn line from a kill mid-write belongs to the dropped tail
            end -= len(line) + 1
        return end

    def start_unit(self, unit: str, position: int | None) -> None:
        self.truncate(self.unit_tail(unit) if position is None else position)

    def finish(self, status: str) -> None:
        self._file.close()


def unit_name(row: dict) -> str | None:
    """The unit a summary row belongs to (the trainer's tag for IMP units); None if the row does not say."""
    if "lth/level" in row and "lth/kind" in row:
        return f"L{row['lth/level']:02d}/{row['lth/kind']}"
    if "af/method" in row:
        return f"{row['af/method']}[{row.get('af/setting', '')}]"
    return None


class WandbLogger(LocalLogger):
    """Local logging plus one W&B run per unit of work, grouped by the job (group) and the sweep (job_type),
    each with the resolved config and the run folder. W&B failures warn once and never stop a run."""

    def __init__(self, job_dir: Path, cfg, full_cfg: DictConfig, group: str | None) -> None:
        super().__init__(job_dir, cfg, full_cfg, group)
        self.cfg, self.job_dir, self.sweep = cfg, Path(job_dir), group
        self.config = OmegaConf.to_container(full_cfg, resolve=True)
        self.job = f"{self.config.get('name', 'job')}-{run_id_of(job_dir)}"
        self.run, self.unit, self.wandb = None, None, None
        try:
            import wandb

            self.wandb = wandb
        except ImportError as e:
            log.warning("W&B disabled for this run: %s (pip install -e '.[wandb]')", e)

    def _open(self, unit: str) -> None:
        self._close(0)
        if self.wandb is None:
            return
        try:
            self.run = self.wandb.init(
                project=self.cfg.project, entity=self.cfg.entity, group=self.job,
                job_type=self.sweep or self.config.get("name"), name=f"{self.job}/{unit}",
                id=re.sub(r"[^A-Za-z0-9_-]+", "-", f"{self.job}-{unit}"), resume="allow",
                tags=list(self.cfg.tags), mode=self.cfg.mode or os.environ.get("WANDB_MODE") or "offline",
                dir=str(self.job_dir), reinit="finish_previous",
                config={**self.config, "leanlab": {"run_dir": str(self.job_dir.resolve()), "unit": unit,
                                                   "job": self.job, "sweep": self.sweep}},
            )
            self.unit = unit
        except Exception as e:  # noqa: BLE001 - W&B must never stop a run
            log.warning("W&B disabled for this run: wandb.init failed (%s: %s)", type(e).__name__, e)
            self.wandb = None

    def _close(self, exit_code: int) -> None:
        run, self.run, self.unit = self.run, None, None
        if run is not None:
            run.finish(exit_code=exit_code)

    def start_unit(self, unit: str, position: int | None) -> None:
        super().start_unit(unit, position)
        self._open(unit)

    def log(self, row: dict, step: int | None = None) -> None:
        super().log(row, step)
        if "unit" in row and row["unit"] != self.unit:  # a unit that does not go through the trainer
            self._open(row["unit"])
        if self.run is not None:
            numbers = {k: v for k, v in row.items() if isinstance(v, (int, float))}
            self.run.log(numbers, **({"step": step} if step is not None else {}))

    def end_unit(self, unit: str, row: dict) -> None:
        if self.unit != unit:
            self._open(unit)
        if self.run is not None:
            self.run.summary.update(strict(row))
            self._close(0)

    def finish(self, status: str) -> None:
        try:
            self._close(0 if status == "completed" else 1)
        finally:
            super().finish(status)


LOGGERS.register("local")(LocalLogger)
LOGGERS.register("wandb")(WandbLogger)


def build_logger(job_dir: Path, cfg, full_cfg: DictConfig, group: str | None) -> Logger:
    return LOGGERS.get(cfg.name)(job_dir, cfg, full_cfg, group)
