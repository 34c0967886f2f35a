"""Tasks: one function per experiment family, `task(cfg, ctx) -> list[row]`, looked up by `cfg.task`."""

from lth.registry import Registry

TASKS: Registry = Registry("task")

from experiments.tasks import adaptive_frames, lth, lth_transfer, moe  # noqa: E402,F401  (each registers its task)
