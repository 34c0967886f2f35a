"""Convolutional models of the lottery-ticket papers: the MNIST-1D CNN, Conv-2/4/6 and VGG-16/19 for CIFAR-10.

Conv-N (Frankle & Carbin 2019, Fig. 2): pairs of 3x3 same-padded convs (ReLU) with a 2x2 max-pool after each
pair, then FC 256-256-10, Gaussian Glorot init. VGG-16/19 as open_lth's `cifar_vgg_N`: 3x3 conv (with bias) +
BatchNorm + ReLU, 2x2 max-pools, global average pool, one FC 512 -> 10; Kaiming-normal init (open_lth, the
recipe of Renda et al. 2020 / Frankle et al. 2020); pass init="glorot_normal" for Frankle & Carbin's.
Prunable: every Conv/Linear weight (open_lth's `prunable_layer_names`); the paper's per-kind rates (e.g. conv 10%,
fc 20%, or fc 0% for VGG-19) are the pruning config's business, not the model's.
"""

from __future__ import annotations

import torch
from torch import nn

from lth.model_registry import MODELS, PrunableModel, init_weights


def image_shape(in_features: int, image_size: int, model: str) -> tuple[int, int]:
    """(channels, side) of square images whose flattened size is `in_features`."""
    if image_size <= 0 or in_features <= 0 or in_features % (image_size * image_size):
        raise ValueError(f"{model}: in_features={in_features} is not channels * {image_size}**2 "
                         f"(pass image_size=<side> for images that are not {image_size}x{image_size})")
    return in_features // (image_size * image_size), image_size


def as_images(x: torch.Tensor, channels: int, side: int) -> torch.Tensor:
    """[B, C, S, S] unchanged, or [B, C*S*S] reshaped to it."""
    if x.dim() == 2:
        return x.view(len(x), channels, side, side)
    if x.dim() != 4:
        raise ValueError(f"expected input [B, {channels}, {side}, {side}] or [B, {channels * side * side}], "
                         f"got {tuple(x.shape)}")
    return x


def _fixed_hidden(name: str, hidden) -> None:
    if hidden is not None:
        raise ValueError(f"{name} has a fixed architecture; model.hidden must be null, got {list(hidden)}")


class CNN1D(PrunableModel):
    """The MNIST-1D repository's ConvBase: Conv1d k=5,3,3 stride 2 pad 1 (ReLU), flatten, one Linear.

    x: [B, L] or [B, 1, L] -> logits [B, num_classes]. L=40, 25 channels: 125 features, 5,210 parameters.
    """

    def __init__(self, length: int, channels: list[int], num_classes: int, init: str) -> None:
        super().__init__()
        self.length = length
        if not channels:
            raise ValueError("mnist1d_cnn needs at least one conv layer: model.hidden=[c1, c2, ...]")
        layers: list[nn.Module] = []
        c_in, n = 1, length
        for i, c in enumerate(channels):
            k = 5 if i == 0 else 3
            layers += [nn.Conv1d(c_in, c, k, stride=2, padding=1), nn.ReLU()]
            c_in, n = c, (n + 2 - k) // 2 + 1
        if n <= 0:
            raise ValueError(f"mnist1d_cnn: input length {length} is too short for {len(channels)} conv layers")
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(c_in * n, num_classes))
        init_weights(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x.view(len(x), 1, x.shape[-1])))


class ConvNet(PrunableModel):
    """Conv-2/4/6. x: [B, C, S, S] or [B, C*S*S] -> logits [B, num_classes]."""

    def __init__(self, in_channels: int, side: int, widths: list[int], hidden: list[int], num_classes: int,
                 init: str) -> None:
        super().__init__()
        self.in_channels, self.side = in_channels, side
        layers: list[nn.Module] = []
        c = in_channels
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU()]
            c = w
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        s = side // 2 ** (len(widths) // 2)
        sizes = [c * s * s, *hidden]
        fc: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(sizes[:-1], sizes[1:]):
            fc += [nn.Linear(a, b), nn.ReLU()]
        fc.append(nn.Linear(sizes[-1], num_classes))
        self.classifier = nn.Sequential(*fc)
        init_weights(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(as_images(x, self.in_channels, self.side)))


class VGG(PrunableModel):
    """open_lth's CIFAR VGG. plan: widths and "M" (max-pool). x: [B, C, S, S] or flat -> [B, num_classes]."""

    def __init__(self, in_channels: int, side: int, plan: list, num_classes: int, init: str) -> None:
        super().__init__()
        self.in_channels, self.side = in_channels, side
        layers: list[nn.Module] = []
        c = in_channels
        for spec in plan:
            if spec == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, spec, 3, padding=1), nn.BatchNorm2d(spec), nn.ReLU()]
                c = spec
        self.features = nn.Sequential(*layers)
        # open_lth: AvgPool2d(2) over the final 2x2 map at 32 px; the global average is the same there.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        init_weights(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(as_images(x, self.in_channels, self.side))).flatten(1))


@MODELS.register("mnist1d_cnn")
def mnist1d_cnn(in_features: int, num_classes: int, hidden: list[int] | None = None,
                init: str = "kaiming_normal") -> CNN1D:
    """`in_features` is the signal length (40); `hidden` the conv channels (default [25, 25, 25])."""
    return CNN1D(in_features, list(hidden) if hidden is not None else [25, 25, 25], num_classes, init)


_CONV_WIDTHS = {"conv2": [64, 64], "conv4": [64, 64, 128, 128], "conv6": [64, 64, 128, 128, 256, 256]}


def _conv_factory(name: str):
    def factory(in_features: int, num_classes: int, hidden: list[int] | None = None, init: str = "glorot_normal",
                image_size: int = 32) -> ConvNet:
        c, s = image_shape(in_features, image_size, name)
        if s % 2 ** (len(_CONV_WIDTHS[name]) // 2):
            raise ValueError(f"{name}: image_size={s} must be divisible by {2 ** (len(_CONV_WIDTHS[name]) // 2)}")
        return ConvNet(c, s, _CONV_WIDTHS[name], list(hidden) if hidden is not None else [256, 256], num_classes,
                       init)

    factory.__doc__ = f"{name} (Frankle & Carbin 2019), convs {_CONV_WIDTHS[name]}; `hidden` = FC widths [256, 256]."
    return factory


for _name in _CONV_WIDTHS:
    MODELS.register(_name)(_conv_factory(_name))

_VGG_PLANS = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}


def _vgg_factory(name: str):
    def factory(in_features: int, num_classes: int, hidden: list[int] | None = None, init: str = "kaiming_normal",
                image_size: int = 32) -> VGG:
        _fixed_hidden(name, hidden)
        c, s = image_shape(in_features, image_size, name)
        return VGG(c, s, _VGG_PLANS[name], num_classes, init)

    factory.__doc__ = f"{name} for CIFAR-10 as open_lth's cifar_{name[:3]}_{name[3:]}."
    return factory


for _name in _VGG_PLANS:
    MODELS.register(_name)(_vgg_factory(_name))
