"""Loggers: `local` (metrics.jsonl, always on) and `wandb` (opt-in, imported lazily, never required)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lth.registry import Registry

log = logging.getLogger(__name__)
LOGGERS: Registry = Registry("logger")


class NullLogger:
    """Logs nothing (ranks other than 0, library use without a run folder)."""

    def log(self, row: dict, step: int | None = None) -> None:
        pass

    def log_records(self, rows: list[dict]) -> None:
        pass

    def finish(self, status: str) -> None:
        pass


class LocalLogger:
    """Appends one JSON object per logged step to metrics.jsonl; summary rows go to summary.json (records.py)."""

    def __init__(self, job_dir: Path, cfg, full_cfg: DictConfig, group: str | None) -> None:
        self.path = Path(job_dir) / "metrics.jsonl"
        self._file = open(self.path, "a")

    def log(self, row: dict, step: int | None = None) -> None:
        self._file.write(json.dumps({**row, "step": step}, default=str) + "\n")
        self._file.flush()

    def position(self) -> int:
        """Byte offset of the end of metrics.jsonl (saved in checkpoints)."""
        return self._file.tell()

    def truncate(self, position: int) -> None:
        """On resume, drop the rows logged after the checkpoint, so each step appears once."""
        self._file.truncate(position)
        self._file.seek(position)

    def log_records(self, rows: list[dict]) -> None:
        pass

    def finish(self, status: str) -> None:
        self._file.close()


class WandbLogger(LocalLogger):
    """Local logging plus W&B. If `wandb.init` fails, warns once and carries on with the local logger only."""

    def __init__(self, job_dir: Path, cfg, full_cfg: DictConfig, group: str | None) -> None:
        super().__init__(job_dir, cfg, full_cfg, group)
        self.run = None
        try:
            import wandb

            mode = cfg.mode or os.environ.get("WANDB_MODE") or "offline"
            self.run = wandb.init(
                project=cfg.project, entity=cfg.entity, group=group, tags=list(cfg.tags), mode=mode,
                dir=str(job_dir), config=OmegaConf.to_container(full_cfg, resolve=True), reinit="finish_previous",
            )
        except Exception as e:  # noqa: BLE001 - W&B must never stop a run
            log.warning("W&B disabled for this run: wandb.init failed (%s: %s)", type(e).__name__, e)

    def log(self, row: dict, step: int | None = None) -> None:
        super().log(row, step)
        if self.run is not None:
            self.run.log({k: v for k, v in row.items() if isinstance(v, (int, float))})

    def log_records(self, rows: list[dict]) -> None:
        if self.run is None or not rows:
            return
        import wandb

        columns = sorted({k for r in rows for k in r})
        self.run.log({"records": wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])})
        for key, value in rows[-1].items():  # the last unit's row is the run's summary
            self.run.summary[key] = value

    def finish(self, status: str) -> None:
        super().finish(status)
        if self.run is not None:
            self.run.finish(exit_code=0 if status == "completed" else 1)


LOGGERS.register("local")(LocalLogger)
LOGGERS.register("wandb")(WandbLogger)


def build_logger(job_dir: Path, cfg, full_cfg: DictConfig, group: str | None):
    return LOGGERS.get(cfg.name)(job_dir, cfg, full_cfg, group)
