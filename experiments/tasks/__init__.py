"""Tasks: one function per experiment family, `task(cfg, ctx) -> list[row]`, looked up by `cfg.task`.

Importing this package registers every task (each module registers its own in `experiments.tasks.registry`).
"""

from experiments.tasks import adaptive_frames, lth, lth_transfer, moe, ofa  # noqa: F401  (each registers its task)
from experiments.tasks.registry import TASKS

__all__ = ["TASKS"]
