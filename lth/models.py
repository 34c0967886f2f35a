"""Models for lottery-ticket experiments, in a registry.

Registered: `mlp`, `lenet_300_100` (here), `mnist1d_cnn`, `conv2`, `conv4`, `conv6`, `vgg16`, `vgg19`
(lth/convnets.py), `resnet20` (lth/resnet.py). Every factory is called as
`factory(in_features, num_classes, hidden=None, init=...)`; `in_features` is C*H*W of one sample
(the length for the 1D CNN), which fixes the input channels of the image models.

Every model exposes `prunable_names()` (the weights the papers prune: weights of Linear/Conv layers, biases
never) and `output_layer_name()` (the weight pruned at its own rate in layer-wise pruning).
"""

from __future__ import annotations

import torch
from torch import nn

from lth.registry import Registry

MODELS: Registry = Registry("lth model")


class PrunableModel(nn.Module):
    """Base class: weights of Linear/Conv layers are prunable; the last such layer is the output layer."""

    def prunable_names(self) -> list[str]:
        return [
            f"{name}.weight"
            for name, m in self.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))
        ]

    def output_layer_name(self) -> str:
        return self.prunable_names()[-1]


def _init(model: nn.Module, scheme: str) -> None:
    inits = {
        "glorot_normal": nn.init.xavier_normal_,
        "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
        "torch_default": None,
    }
    if scheme not in inits:
        raise ValueError(f"model.init={scheme!r} is not one of {sorted(inits)}")
    if inits[scheme] is None:
        return
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            inits[scheme](m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class MLP(PrunableModel):
    """Fully connected ReLU network. x: [B, in_features] -> logits [B, num_classes]."""

    def __init__(self, in_features: int, hidden: list[int], num_classes: int, init: str) -> None:
        super().__init__()
        sizes = [in_features, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], num_classes))
        self.net = nn.Sequential(*layers)
        _init(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


@MODELS.register("mlp")
def mlp(in_features: int, num_classes: int, hidden: list[int] | None = None, init: str = "kaiming_normal") -> MLP:
    """Generic MLP; MNIST-1D default is 40-500-500-10 (the MNIST-1D lottery notebook)."""
    return MLP(in_features, list(hidden) if hidden is not None else [500, 500], num_classes, init)


@MODELS.register("lenet_300_100")
def lenet_300_100(in_features: int, num_classes: int, hidden: list[int] | None = None, init: str = "glorot_normal") -> MLP:
    """LeNet-300-100 (Frankle & Carbin 2019), Glorot-normal init. 784 inputs on MNIST: 266,200 weights."""
    if hidden is not None and list(hidden) != [300, 100]:
        raise ValueError(f"lenet_300_100 has fixed hidden sizes [300, 100], got model.hidden={list(hidden)}")
    return MLP(in_features, [300, 100], num_classes, init)


def build_model(name: str, in_features: int, num_classes: int, **kwargs) -> PrunableModel:
    return MODELS.get(name)(in_features=in_features, num_classes=num_classes, **kwargs)


# Convnets register themselves in MODELS on import; they need `PrunableModel` and `_init` defined above.
from lth import convnets, resnet  # noqa: E402, F401
