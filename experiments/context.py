"""What a task receives from the runner: where to write, the meter, the logger, and the row identity.

A RunContext is also the `Services` the trainer needs (meter, logger, progress, flop cache, preemption, carbon
plan), so a task passes `ctx` to `fit`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from experiments import distributed
from experiments.loggers import Logger, as_logger, unit_name
from experiments.preemption import NEVER, PreemptionFlag
from experiments.progress import JobProgress, as_progress
from experiments.runtime import Runtime
from meter import Meter
from meter.flops import FlopCache
from meter.schedule import Plan


@dataclass
class RunContext:
    job_dir: Path
    meter: Meter
    logger: Logger
    identity: dict  # experiment, run_id, seed, config_hash: the first keys of every row
    progress: bool | JobProgress = True  # a bool becomes a JobProgress without a unit count
    preemption: PreemptionFlag = NEVER
    carbon_plan: Plan | None = None  # carbon-aware schedule (meter.schedule), made once when the run starts
    flop_cache: FlopCache = field(default_factory=FlopCache)
    runtime: Runtime = field(default_factory=Runtime)  # device, precision, compile (experiments.runtime)
    rows: list[dict] = field(default_factory=list)  # rows finished so far (kept in a failed summary)

    def __post_init__(self) -> None:
        self.progress = as_progress(self.progress)
        self.logger = as_logger(self.logger)

    def add_row(self, row: dict) -> dict:
        """A unit finished (or was found finished): its row gets the identity and the runtime, and closes the
        unit in the logger and the progress count."""
        row = {**self.identity, **runtime(self.runtime), **row}  # a row may say what it compiled
        self.rows.append(row)
        self.logger.end_unit(unit_name(row) or str(self.identity.get("experiment", "job")), row)
        self.progress.unit_done()
        return row


def runtime(rt: Runtime | None = None) -> dict:
    """What besides the config changes floating-point results: recorded in every row (`rt`: the run's Runtime,
    default CPU fp32 eager)."""
    return {"runtime/threads": torch.get_num_threads(), "runtime/torch": torch.__version__,
            **(rt or Runtime()).row(), "runtime/world_size": distributed.world()[1]}


def seed_everything(seed: int, threads: int | None = None) -> None:
    """Python, NumPy and torch global RNGs; data order has its own generators seeded from the same int.

    `threads` fixes torch's intra-op threads: a reduction split over more threads adds in another order, so
    results would otherwise depend on the machine and the launcher (joblib workers get fewer threads).
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads is not None:
        torch.set_num_threads(threads)
