"""Models for lottery-ticket experiments, in a registry.

Registered: `mlp`, `lenet_300_100` (here), `mnist1d_cnn`, `conv2`, `conv4`, `conv6`, `vgg16`, `vgg19`
(lth/convnets.py), `resnet20` (lth/resnet.py); the registry itself is lth/model_registry.py. Every factory is called as
`factory(in_features, num_classes, hidden=None, init=...)`; `in_features` is C*H*W of one sample
(the length for the 1D CNN), which fixes the input channels of the image models.

Every model exposes `prunable_names()` (the weights the papers prune: weights of Linear/Conv layers, biases
never) and `output_layer_name()` (the weight pruned at its own rate in layer-wise pruning).
"""

from __future__ import annotations

import torch
from torch import nn

from lth.model_registry import MODELS, PrunableModel, build_model, init_weights

__all__ = ["MLP", "MODELS", "PrunableModel", "build_model", "lenet_300_100", "mlp"]


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
        init_weights(self, init)

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
