"""The base of every config schema: `ConfigError`, the range check, and the schema registry.

A schema is a dataclass registered with `@schema(group, name)`; `experiments.config.register_configs` stores every
registered schema in Hydra's ConfigStore, so group files extend it (`defaults: [base_<group>, _self_]`) and a typo
or a value of the wrong type fails at compose time. Each task keeps its schemas beside it
(`experiments/tasks/<task>_config.py`); range checks live in each dataclass's `__post_init__`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SCHEMAS: dict[tuple[str, str], type] = {}
CROSS_CHECKS: dict[str, list[Callable]] = {}  # task -> checks of the whole config (keys of several groups)


class ConfigError(ValueError):
    """A config value that is out of range or unknown; the message names the key, the value and what is allowed."""


def check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid; allowed: {allowed}")


def schema(group: str, name: str):
    """Class decorator: store the dataclass as `<group>/<name>` in Hydra's ConfigStore (at register_configs)."""

    def register(cls: type) -> type:
        if (group, name) in SCHEMAS:
            raise ValueError(f"schema {group}/{name} is already registered (by {SCHEMAS[(group, name)].__name__})")
        SCHEMAS[(group, name)] = cls
        return cls

    return register


def cross_check(task: str):
    """Function decorator: `check(config)` runs at validation for jobs of `task`, after every group's own checks
    (for rules that relate keys of several groups, e.g. a phase opening a kernel the model does not have)."""

    def register(fn: Callable) -> Callable:
        CROSS_CHECKS.setdefault(task, []).append(fn)
        return fn

    return register
