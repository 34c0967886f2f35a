"""`TASKS`: one function per experiment family, `task(cfg, ctx) -> list[row]`, looked up by `cfg.task`."""

from meter.registry import Registry

TASKS: Registry = Registry("task")
