"""The once-for-all supernet: stem -> [first block] -> elastic stages -> head 1x1 -> pool -> [feature] -> [dropout]
-> classifier.

`OFANet` holds the fixed layers and the forward; `OFASupernet` runs the first D blocks of each stage at the
active kernels and widths, `export.StaticSubnet` runs plain `MBBlock`s. x: [B, C, L] (1-D) or [B, C, H, W].
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

from .layers import ACTS, ElasticMBBlock, MBBlock, conv_bn
from .space import ArchSpace, SubnetConfig, SupernetSpec

STEM_KERNEL = 3
FIRST_BLOCK_KERNEL = 3


def resize_input(x: Tensor, resolution: int) -> Tensor:
    """Resize the spatial dims to `resolution` (1-D: linear, 2-D: bilinear; align_corners=False)."""
    if all(s == resolution for s in x.shape[2:]):
        return x
    mode = {3: "linear", 4: "bilinear"}[x.dim()]
    return F.interpolate(x, size=(resolution,) * (x.dim() - 2), mode=mode, align_corners=False)


def block_geometry(spec: SupernetSpec, stage: int, index: int) -> dict:
    """Static shape of block `index` of `stage`: cin, cout, stride, se, act."""
    return dict(cin=spec.block_in_channels(stage, index), cout=spec.stage_widths[stage],
                stride=spec.stage_strides[stage] if index == 0 else 1, se=spec.stage_se[stage],
                act=spec.stage_acts[stage])


class OFANet(nn.Module):
    """Fixed layers shared by the supernet and every exported sub-net; subclasses provide `blocks` and
    `running_blocks()`."""

    def __init__(self, spec: SupernetSpec) -> None:
        super().__init__()
        self.spec = spec
        d = spec.dims
        self.stem = conv_bn(d, spec.in_channels, spec.stem_channels, STEM_KERNEL, spec.stem_stride, act="hswish")
        c = spec.stem_channels
        self.first_block = None
        if spec.first_block_channels:
            self.first_block = MBBlock(d, c, c, spec.first_block_channels, FIRST_BLOCK_KERNEL, 1, 0,
                                       spec.stage_acts[0], expand=False)
        self.head = conv_bn(d, spec.stage_widths[-1], spec.head_channels, 1, act="hswish")
        c = spec.head_channels
        self.feature = None
        if spec.feature_channels:
            self.feature = nn.Sequential(nn.Linear(c, spec.feature_channels, bias=False), ACTS["hswish"]())
            c = spec.feature_channels
        # dropout before the classifier (absent at 0, so such nets draw no random numbers for it)
        self.dropout = nn.Dropout(spec.dropout) if spec.dropout else None
        self.classifier = nn.Linear(c, spec.num_classes)

    def running_blocks(self) -> Iterable[nn.Module]:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, in_channels, *spatial] -> logits [B, num_classes]."""
        h = self.stem(x)
        if self.first_block is not None:
            h = self.first_block(h)
        for block in self.running_blocks():
            h = block(h)
        h = self.head(h).mean(dim=tuple(range(2, h.dim())))
        if self.feature is not None:
            h = self.feature(h)
        if self.dropout is not None:
            h = self.dropout(h)
        return self.classifier(h)


class OFASupernet(OFANet):
    """All elastic blocks at maximal size; `set_active(cfg)` picks the sub-net the forward runs."""

    def __init__(self, spec: SupernetSpec) -> None:
        super().__init__(spec)
        self.blocks = nn.ModuleList()
        for s in range(spec.num_stages):
            for i in range(spec.max_depth):
                g = block_geometry(spec, s, i)
                self.blocks.append(ElasticMBBlock(
                    spec.dims, g["cin"], g["cout"], g["stride"], g["se"], g["act"], spec.kernel_sizes,
                    spec.expand_ratios, partial(spec.mid_channels, g["cin"]), spec.se_channels))
        self._space = ArchSpace.full(spec)
        self.set_active(self._space.largest())

    def set_active(self, cfg: SubnetConfig) -> None:
        """Validate `cfg` against the full space and make the forward run it."""
        self._space.validate(cfg)
        self.active = cfg
        for block, k, e in zip(self.blocks, cfg.kernels, cfg.expands, strict=True):
            block.active_kernel, block.active_expand = k, e

    def running_blocks(self) -> list[ElasticMBBlock]:
        return [self.blocks[b] for _, _, b in self.active.active_blocks(self.spec)]
