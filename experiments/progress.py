"""Progress of the whole job: which unit of how many, the job's share done and an ETA.

On a terminal (`sys.stderr.isatty()`) each unit gets a tqdm bar whose label carries the job's progress; in a log
file (CI, SLURM, Hydra's job log) one line per epoch instead of carriage-return frames. A task says how many
units its config makes through `UNIT_COUNTS` (tasks without an entry show units done only).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from tqdm import tqdm

from meter.registry import Registry

log = logging.getLogger(__name__)
UNIT_COUNTS: Registry = Registry("unit count")


@UNIT_COUNTS.register("lth")
def _imp_units(cfg) -> tuple[int, str]:
    """Level 0's ticket, then a ticket and every baseline per level; a stability twin per level if asked."""
    m = cfg.method
    return 1 + m.levels * (1 + len(m.baselines)) + (m.levels + 1 if m.stability else 0), f"levels 0-{m.levels}"


@UNIT_COUNTS.register("moe")
def _one_unit(cfg) -> tuple[int, str]:
    return 1, ""


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


class JobProgress:
    """Counts finished units (RunContext.add_row calls `unit_done`) and reports training progress."""

    def __init__(self, enabled: bool = True, units_total: int | None = None, stream: TextIO | None = None,
                 note: str = "") -> None:
        self.enabled, self.units_total, self.units_done, self.note = enabled, units_total, 0, note
        self.stream = stream
        self._t0: float | None = None
        self._f0 = 0.0  # job fraction when timing began (a resumed job starts part-way)

    @classmethod
    def for_config(cls, cfg) -> JobProgress:
        total, note = UNIT_COUNTS.get(cfg.task)(cfg) if cfg.task in UNIT_COUNTS else (None, "")
        return cls(enabled=cfg.progress, units_total=total, note=note)

    @property
    def is_tty(self) -> bool:
        return (self.stream or sys.stderr).isatty()

    def unit_done(self) -> None:
        self.units_done += 1

    def fraction(self, unit_fraction: float) -> float | None:
        if not self.units_total:
            return None
        return min(1.0, (self.units_done + unit_fraction) / self.units_total)

    def summary(self, unit_fraction: float) -> str:
        """'unit 5/13 (levels 0-4), job 38%, ETA 4m12s' (ETA from the rate since this process started training)."""
        now, f = time.monotonic(), self.fraction(unit_fraction)
        current = self.units_done + 1 if not self.units_total else min(self.units_done + 1, self.units_total)
        unit = f"unit {current}/{self.units_total or '?'}" + (f" ({self.note})" if self.note else "")
        if f is None:
            return unit
        if self._t0 is None:
            self._t0, self._f0 = now, f
        eta = ""
        if f > self._f0:
            eta = f", ETA {_duration((now - self._t0) * (1 - f) / (f - self._f0))}"
        return f"{unit}, job {100 * f:.0f}%{eta}"

    def unit(self, tag: str, start: int, total: int, steps_per_epoch: int) -> UnitProgress:
        return UnitProgress(self, tag, start, total, steps_per_epoch)


class UnitProgress:
    """One unit's steps: a bar on a terminal, else one log line per epoch; nothing when disabled."""

    def __init__(self, job: JobProgress, tag: str, start: int, total: int, steps_per_epoch: int) -> None:
        self.job, self.tag, self.start, self.total, self.spe = job, tag, start, total, steps_per_epoch
        self.bar = None
        if job.enabled and job.is_tty:
            self.bar = tqdm(total=total, initial=start, desc=f"{tag} [{job.summary(0.0)}]",
                            leave=False, file=job.stream)

    def step(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def epoch_end(self, step: int, metrics: dict[str, float]) -> None:
        summary = self.job.summary((step - self.start) / max(1, self.total - self.start)) if self.job.enabled else ""
        if self.bar is not None:
            self.bar.set_description(f"{self.tag} [{summary}]", refresh=False)
        elif self.job.enabled:
            shown = " ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float))
            line = (f"{self.tag} epoch {-(-step // self.spe)}/{-(-self.total // self.spe)} step {step}/{self.total}"
                    f"{' ' + shown if shown else ''} | {summary}")
            if self.job.stream is not None:
                print(line, file=self.job.stream, flush=True)
            else:
                log.info(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def as_progress(progress: bool | JobProgress) -> JobProgress:
    return progress if isinstance(progress, JobProgress) else JobProgress(enabled=bool(progress))
