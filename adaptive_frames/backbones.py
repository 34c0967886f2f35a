"""Per-frame networks: [N, C, H, W] -> [N, out_dim]. Used as resolution backbones and as the policy's encoder.

Registry entries take (in_channels, out_dim, width_mult). torchvision models are built with weights=None
(nothing downloads); their first conv is replaced when in_channels != 3.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchvision
from torch import nn

from meter.registry import Registry

BACKBONES: Registry[Callable[[int, int, float], nn.Module]] = Registry("backbone")


def _conv_bn(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class TinyCNN(nn.Module):
    """stem (stride 1) + `depth` stride-2 stages doubling width + global average pool + linear. For CPU work."""

    def __init__(self, in_channels: int, out_dim: int, width: int = 8, depth: int = 2) -> None:
        super().__init__()
        layers, c = [_conv_bn(in_channels, width, 1)], width
        for _ in range(depth):
            layers.append(_conv_bn(c, 2 * c, 2))
            c *= 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N, out_dim]
        return self.head(self.features(x).mean(dim=(2, 3)))


def _check_width(name: str, width_mult: float) -> None:
    if width_mult <= 0:
        raise ValueError(f"backbone {name!r}: width_mult={width_mult} must be > 0")


@BACKBONES.register("tiny_cnn")
def tiny_cnn(in_channels: int, out_dim: int, width_mult: float = 1.0) -> nn.Module:
    _check_width("tiny_cnn", width_mult)
    return TinyCNN(in_channels, out_dim, width=max(1, round(8 * width_mult)))


@BACKBONES.register("mobilenet_v2")
def mobilenet_v2(in_channels: int, out_dim: int, width_mult: float = 1.0) -> nn.Module:
    _check_width("mobilenet_v2", width_mult)
    m = torchvision.models.mobilenet_v2(weights=None, num_classes=out_dim, width_mult=width_mult)
    if in_channels != 3:
        old = m.features[0][0]
        m.features[0][0] = nn.Conv2d(in_channels, old.out_channels, 3, old.stride, 1, bias=False)
    return m


def _resnet(name: str) -> Callable[[int, int, float], nn.Module]:
    def build(in_channels: int, out_dim: int, width_mult: float = 1.0) -> nn.Module:
        if width_mult != 1.0:
            raise ValueError(f"backbone {name!r}: width_mult={width_mult} not supported (torchvision ResNets: 1.0)")
        m = getattr(torchvision.models, name)(weights=None, num_classes=out_dim)
        if in_channels != 3:
            m.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        return m

    return build


for _name in ("resnet18", "resnet34", "resnet50"):
    BACKBONES.register(_name)(_resnet(_name))


def build_backbone(name: str, in_channels: int, out_dim: int, width_mult: float = 1.0) -> nn.Module:
    return BACKBONES.get(name)(in_channels, out_dim, width_mult)
