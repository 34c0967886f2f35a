"""Tasks: one function per experiment family, `task(cfg, ctx) -> list[row]`, looked up by `cfg.task`."""

from lth.registry import Registry

TASKS: Registry = Registry("task")

from experiments.tasks import lth, lth_transfer  # noqa: E402,F401  (each registers its task)
