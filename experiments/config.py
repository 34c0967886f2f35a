"""The root config and the shared schemas (optimiser, logger, no-method), Hydra registration, validation and the
run's config hash.

Task-specific schemas live beside their tasks (`experiments/tasks/<task>_config.py`) and register themselves with
`experiments.schema.schema`; `register_configs` imports them all, so registration does not depend on what else
was imported first.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from experiments.distributed import DDPCfg
from experiments.errors import InputError
from experiments.schema import CROSS_CHECKS, SCHEMAS, ConfigError, schema
from experiments.schema import check as _check
from meter import MeterConfig
from meter.config import TraceError

__all__ = ["Config", "ConfigError", "LoggerCfg", "NoMethodCfg", "OptimCfg", "config_hash", "register_configs",
           "validate"]

# Modules whose schemas register themselves (one per task family).
SCHEMA_MODULES = ("experiments.tasks.lth_config", "experiments.tasks.moe_config", "experiments.tasks.af_config",
                  "experiments.tasks.ofa_config", "experiments.tasks.hf_config", "experiments.debug")


@schema("optim", "base_optim")
@dataclass
class OptimCfg:
    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 100
    epochs: Optional[int] = None  # exactly one of epochs / steps
    steps: Optional[int] = None
    schedule: str = "constant"  # constant | cosine | multistep
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # multistep: fractions of training
    gamma: float = 0.1  # multistep: LR multiplied by gamma at each milestone
    warmup_steps: int = 0  # linear warm-up from 0, before the schedule
    augment: str = "none"  # per-batch augmentation: none | crop_flip (CIFAR: pad 4, random 32 crop, h-flip)
    eval_every: Optional[int] = None  # steps between evaluations; None = once per epoch

    def __post_init__(self) -> None:
        from experiments.optim import OPTIMIZERS, SCHEDULES

        _check(self.name in OPTIMIZERS, "optim.name", self.name, ", ".join(OPTIMIZERS.names()))
        _check(self.schedule in SCHEDULES, "optim.schedule", self.schedule, ", ".join(SCHEDULES.names()))
        from experiments.augment import AUGMENTATIONS

        _check(self.augment in AUGMENTATIONS, "optim.augment", self.augment, ", ".join(AUGMENTATIONS.names()))
        _check(all(0 < m < 1 for m in self.milestones), "optim.milestones", self.milestones,
               "fractions of training in (0, 1)")
        _check(0 < self.gamma <= 1, "optim.gamma", self.gamma, "(0, 1]")
        _check(self.warmup_steps >= 0, "optim.warmup_steps", self.warmup_steps, ">= 0")
        _check(self.lr > 0, "optim.lr", self.lr, "> 0")
        _check(0.0 <= self.momentum < 1.0, "optim.momentum", self.momentum, "[0, 1)")
        _check(self.weight_decay >= 0, "optim.weight_decay", self.weight_decay, ">= 0")
        _check(self.batch_size > 0, "optim.batch_size", self.batch_size, "> 0")
        _check((self.epochs is None) != (self.steps is None), "optim.epochs/optim.steps",
               (self.epochs, self.steps), "exactly one of them set")
        for key in ("epochs", "steps", "eval_every"):
            value = getattr(self, key)
            _check(value is None or value > 0, f"optim.{key}", value, "> 0 or null")



@schema("method", "base_none")
@dataclass
class NoMethodCfg:
    """Tasks whose method is the model itself (sparse_moe, plain training)."""

    name: str = "none"



@schema("logger", "base_logger")
@dataclass
class LoggerCfg:
    name: str = "local"  # local | wandb
    project: str = "leanlab"
    entity: Optional[str] = None
    mode: Optional[str] = None  # online | offline | disabled; None = $WANDB_MODE, else offline
    tags: list[str] = field(default_factory=list)
    log_every: int = 50  # steps between training-loss rows in metrics.jsonl; 0 = none

    def __post_init__(self) -> None:
        _check(self.name in ("local", "wandb"), "logger.name", self.name, "local, wandb")
        _check(self.log_every >= 0, "logger.log_every", self.log_every, ">= 0")
        _check(self.mode in (None, "online", "offline", "disabled"), "logger.mode", self.mode,
               "online, offline, disabled, null")



@dataclass
class Config:
    name: str = MISSING  # the experiment's name (row key "experiment"); set by conf/experiment/*.yaml
    task: str = "lth"
    seed: int = 0
    threads: int = 1  # torch intra-op threads: fixed so results do not depend on the launcher or machine
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps (experiments.runtime; auto: the local rank's GPU)
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 with a checkpointed GradScaler, GPU only)
    compile: bool = False  # torch.compile the model (OFA: the static parts only; rows say what was compiled)
    compile_mode: str = "default"  # torch.compile mode: default | reduce-overhead | max-autotune[-no-cudagraphs]
    channels_last: bool = False  # conv nets and image batches in NHWC
    ddp: DDPCfg = field(default_factory=DDPCfg)  # data parallel (experiments.distributed): ddp.sync_bn
    sweep_name: Optional[str] = None  # W&B group of a stored sweep; set by conf/sweep/*.yaml
    progress: bool = True  # tqdm bars; always off under CI
    data: Any = MISSING
    model: Any = MISSING
    optim: Any = MISSING
    method: Any = MISSING
    meter: Any = MISSING
    logger: Any = MISSING
    paths: Any = MISSING  # output_root etc.; never affects results
    debug: Any = None  # debug=fast|limit|overfit (experiments/debug.py); None for real runs

    def __post_init__(self) -> None:
        from experiments.tasks.registry import TASKS

        _check(self.task in TASKS, "task", self.task, ", ".join(TASKS.names()))
        _check(self.seed >= 0, "seed", self.seed, ">= 0")
        _check(self.threads >= 1, "threads", self.threads, ">= 1")
        from experiments.runtime import check_keys

        check_keys(self.device, self.precision, self.compile_mode)  # the machine is checked when the run starts
        for check in CROSS_CHECKS.get(self.task, ()):
            check(self)



schema("meter", "base_meter")(MeterConfig)


def register_configs() -> None:
    for module in SCHEMA_MODULES:
        importlib.import_module(module)
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for (group, name), node in SCHEMAS.items():
        cs.store(group=group, name=name, node=node)


def validate(cfg: DictConfig) -> Config:
    """Instantiate every dataclass (running range checks); a failure raises ConfigError naming the key.

    Also refuses keys no schema declares (`+method.typo=1`) and nan/inf in any float."""
    from experiments import suggest

    suggest.unknown_keys(cfg)
    try:
        typed = OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except TraceError as e:  # the intensity trace file is an input: its own error kind (exit code)
        raise InputError(str(e)) from None
    except ValueError as e:  # a schema's own ValueError (e.g. MeterConfig) becomes a ConfigError
        raise ConfigError(str(e)) from None
    suggest.non_finite(typed)
    return typed


# Keys that do not change what is computed: they never enter the config hash.
# `device` too: a run started on a GPU resumes into the same folder on a CPU (and the reverse).
_HASH_EXCLUDED = {"seed", "progress", "logger", "meter", "sweep_name", "name", "paths", "device"}


def _schema_defaults(schema) -> dict:
    import dataclasses

    out = {}
    for f in fields(schema):
        if f.default is not dataclasses.MISSING and f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _non_default(node: DictConfig, excluded: frozenset = frozenset()) -> dict:
    schema = OmegaConf.get_type(node)
    defaults = _schema_defaults(schema) if is_dataclass(schema) else {}
    out = {}
    for key in node:
        if key in excluded:
            continue
        value = node[key]
        if isinstance(value, DictConfig):
            sub = _non_default(value)
            if sub:
                out[key] = sub
            continue
        plain = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        if key not in defaults or defaults[key] != plain:
            out[key] = plain
    return out


def config_hash(cfg: DictConfig) -> str:
    """MD5 of the non-default hyperparameters (open_lth style): adding an option with a default keeps old hashes."""
    payload = json.dumps(_non_default(cfg, frozenset(_HASH_EXCLUDED | {"hydra"})), sort_keys=True, default=str)
    return hashlib.md5(payload.encode()).hexdigest()[:12]
