"""ResNet-20 for CIFAR-10 (He et al. 2016, Sec. 4.2), structured as open_lth's `cifar_resnet_20`.

3x3 conv (16) + BN + ReLU, three stages of 3 basic blocks (16, 32, 64 filters; stride 2 entering stages 2 and 3),
global average pool, FC 64 -> 10. Convs have no bias. Like open_lth, a downsampling block's shortcut is a 1x1
strided conv + BN (He et al.'s CIFAR option A is a parameter-free zero-padded identity): 272,474 parameters,
He et al.'s "0.27M". Kaiming-normal init (open_lth's default); BatchNorm at PyTorch's default (weight 1, bias 0;
open_lth draws BN weights uniformly in [0, 1)).

Prunable (as open_lth): every conv weight, 1x1 shortcuts included, and the FC weight. Frankle & Carbin 2019 prune
"conv 20%, fc 0%": set the output layer's rate to 0 rather than changing the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lth.convnets import _fixed_hidden, as_images, image_shape
from lth.model_registry import MODELS, PrunableModel, init_weights


class Block(nn.Module):
    """Two 3x3 conv-BN layers around a residual connection. x: [B, f_in, H, W] -> [B, f_out, H/s, W/s]."""

    def __init__(self, f_in: int, f_out: int, downsample: bool) -> None:
        super().__init__()
        stride = 2 if downsample else 1
        self.conv1 = nn.Conv2d(f_in, f_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(f_out)
        self.conv2 = nn.Conv2d(f_out, f_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(f_out)
        self.shortcut = nn.Sequential()
        if downsample or f_in != f_out:
            self.shortcut = nn.Sequential(nn.Conv2d(f_in, f_out, 1, stride=stride, bias=False), nn.BatchNorm2d(f_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(PrunableModel):
    """Depth 6n+2, widths (w, 2w, 4w). x: [B, C, S, S] or [B, C*S*S] -> logits [B, num_classes]."""

    def __init__(self, in_channels: int, side: int, depth: int, width: int, num_classes: int, init: str) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1, got {depth}")
        self.in_channels, self.side = in_channels, side
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        blocks, f_in = [], width
        for stage in range(3):
            for i in range((depth - 2) // 6):
                f_out = width * 2**stage
                blocks.append(Block(f_in, f_out, downsample=stage > 0 and i == 0))
                f_in = f_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(f_in, num_classes)
        init_weights(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.conv(as_images(x, self.in_channels, self.side))))
        out = self.blocks(out)
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


@MODELS.register("resnet20")
def resnet20(in_features: int, num_classes: int, hidden: list[int] | None = None, init: str = "kaiming_normal",
             image_size: int = 32, width: int = 16) -> CifarResNet:
    """ResNet-20 (open_lth `cifar_resnet_20[_width]`)."""
    _fixed_hidden("resnet20", hidden)
    c, s = image_shape(in_features, image_size, "resnet20")
    return CifarResNet(c, s, 20, width, num_classes, init)
