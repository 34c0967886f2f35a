"""What a task receives from the runner: where to write, the meter, the logger, and the row identity."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from experiments.preemption import NEVER, PreemptionFlag
from meter import Meter
from meter.flops import FlopCache
from meter.schedule import Plan


@dataclass
class RunContext:
    job_dir: Path
    meter: Meter
    logger: object
    identity: dict  # experiment, run_id, seed, config_hash: the first keys of every row
    progress: bool = True
    preemption: PreemptionFlag = NEVER
    carbon_plan: Plan | None = None  # carbon-aware schedule (meter.schedule), made once when the run starts
    flop_cache: FlopCache = field(default_factory=FlopCache)
    rows: list[dict] = field(default_factory=list)  # rows finished so far (kept in a failed summary)

    def add_row(self, row: dict) -> dict:
        row = {**self.identity, **row}
        self.rows.append(row)
        return row


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch global RNGs; data order has its own generators seeded from the same int."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
