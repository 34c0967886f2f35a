"""Debug modes (`debug=fast|limit|overfit`, conf/debug/*.yaml) for every experiment and stored sweep.

A debug file sets caps, not experiment keys: `apply` lowers whichever of the experiment's own keys they concern
(steps, IMP levels, adaptive-frames stage epochs, data sizes) before validation, so one file serves every
experiment, and the saved config.yaml shows the values that actually ran. `overfit` evaluates on the training set.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

from omegaconf import DictConfig, open_dict

from experiments.schema import check as _check
from experiments.schema import schema

log = logging.getLogger(__name__)

# Data-size keys of the data schemas (lth, moe, adaptive frames); each is capped at `max_samples`.
SIZE_KEYS = ("num_samples", "n_train", "n_test", "num_train", "num_test")
STAGE_EPOCH_KEYS = ("pretrain_epochs", "policy_epochs", "finetune_epochs")  # adaptive frames
# Once-for-all: each of `method.phases` gets `max_epochs`, `method.predictor_samples` `max_samples` (>= 10),
# `method.latency_repeats` and `method.search.generations` `max_steps`.


@schema("debug", "base_debug")
@dataclass
class DebugCfg:
    mode: str = "fast"
    max_steps: Optional[int] = None  # training steps per unit (an epoch budget becomes this many steps)
    eval_every: Optional[int] = None  # steps between evaluations, at most
    max_levels: Optional[int] = None  # IMP levels
    max_epochs: Optional[int] = None  # each adaptive-frames stage
    max_samples: Optional[int] = None  # generated data sizes; char-LM text = max_samples blocks
    max_batch_size: Optional[int] = None  # optim.batch_size (a capped training set must hold one batch)
    overfit: bool = False  # validation and test sets are the training set (a model that cannot fit it is broken)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.startswith(("max_", "eval_")):
                least = 0 if f.name == "max_levels" else 1  # 0 levels = the dense network only
                _check(value is None or value >= least, f"debug.{f.name}", value, f">= {least} or null")


def explicit_keys(overrides: Iterable[str]) -> frozenset[str]:
    """The dotted keys a list of `key=value` overrides sets (`+`/`++` stripped)."""
    return frozenset(o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o)


class _Capper:
    """Lowers values to caps, except keys the user set explicitly (their overrides win over a debug mode)."""

    def __init__(self, explicit: frozenset[str]) -> None:
        self.explicit = explicit

    def cap(self, node: DictConfig, key: str, limit: Optional[int]) -> None:
        path = f"{node._get_full_key(key)}"
        if (limit is not None and key in node and node[key] is not None and node[key] > limit
                and path not in self.explicit):
            log.info("debug caps %s: %s -> %s", path, node[key], limit)
            node[key] = limit

    def sizes(self, node: DictConfig, limit: int) -> None:
        for key in node:
            child = node[key]
            if isinstance(child, DictConfig):
                self.sizes(child, limit)
            elif key in SIZE_KEYS:
                self.cap(node, key, limit)


def apply(cfg: DictConfig, overrides: Iterable[str] = ()) -> DictConfig:
    """Lower `cfg`'s own keys to the caps of `cfg.debug` (in place; a no-op without a debug mode).

    Keys set in `overrides` (the command line's `key=value`s) keep their value."""
    d = cfg.get("debug")
    if d is None:
        return cfg
    explicit = explicit_keys(overrides)
    capper = _Capper(explicit)
    with open_dict(cfg):
        optim, method, data = cfg.optim, cfg.method, cfg.data
        if d.max_steps is not None and not {"optim.steps", "optim.epochs"} & explicit:
            optim.steps = d.max_steps if optim.steps is None else min(optim.steps, d.max_steps)
            optim.epochs = None
            if str(method.get("rewind", "0")) != "0":  # a rewind point past the capped run would be invalid
                method.rewind = f"{max(1, d.max_steps // 2)}it"
        if d.eval_every is not None and "optim.eval_every" not in explicit:
            optim.eval_every = d.eval_every if optim.eval_every is None else min(optim.eval_every, d.eval_every)
        capper.cap(optim, "batch_size", d.max_batch_size)
        capper.cap(method, "levels", d.max_levels)
        for key in STAGE_EPOCH_KEYS:
            capper.cap(method, key, d.max_epochs)
        for phase in method.get("phases") or []:  # once-for-all training phases
            before = phase.get("epochs")
            capper.cap(phase, "epochs", d.max_epochs)
            if phase.get("warmup_epochs") and before and phase.epochs < before:  # keep the warm-up's share
                phase.warmup_epochs = phase.warmup_epochs * phase.epochs / before
        capper.cap(method, "predictor_samples", None if d.max_samples is None else max(10, d.max_samples))
        capper.cap(method, "latency_repeats", None if d.max_steps is None else max(3, d.max_steps))
        if "search" in method:
            capper.cap(method.search, "generations", d.max_steps)
        if d.max_samples is not None:
            capper.sizes(data, d.max_samples)
            capper.sizes(method, d.max_samples)  # a transfer source's data
            if "max_chars" in data and "block_size" in cfg.model and "data.max_chars" not in explicit:
                limit = d.max_samples * cfg.model.block_size
                data.max_chars = limit if data.max_chars is None else min(data.max_chars, limit)
    return cfg


def overfit(cfg, data):
    """`data` with its validation and test sets replaced by the training set when `debug.overfit` is on."""
    if cfg.debug is None or not cfg.debug.overfit:
        return data
    if hasattr(data, "overfit"):  # a streaming split (experiments.streaming) knows how
        return data.overfit()
    if hasattr(data, "x_train"):
        return dataclasses.replace(data, x_val=data.x_train, y_val=data.y_train, x_test=data.x_train,
                                   y_test=data.y_train)
    return dataclasses.replace(data, test_clips=data.train_clips, test_labels=data.train_labels,
                               test_informative=None)
