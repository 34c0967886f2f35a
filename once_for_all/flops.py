"""Analytic FLOPs of any sub-network: a table per block per choice plus the fixed layers, no forward pass.

Convention: that of torch.utils.flop_counter.FlopCounterMode (and meter.flops), i.e. 2 FLOPs per multiply-add of
convolutions and matrix multiplies only (conv, linear/addmm/mm). Not counted, because FlopCounterMode does not
count them either: BatchNorm, activations, the SE pooling mean and gating product, residual additions, biases
and the global pooling. Equal to FlopCounterMode on the exported StaticSubnet at batch 1 (tests check it
exactly). The supernet's own forward costs more: its kernel-transform matmuls (per layer,
mid x k^dims x k^dims MACs) are training overhead that an exported sub-net does not have.
"""

from __future__ import annotations

from .space import SubnetConfig, SupernetSpec
from .supernet import FIRST_BLOCK_KERNEL, STEM_KERNEL, block_geometry


def _out(size: int, stride: int) -> int:
    """Output length of a conv with odd kernel k, padding k//2 and `stride`."""
    return (size - 1) // stride + 1


class FlopsTable:
    """FLOPs of one sample (batch 1) through sub-nets of `spec`; entries are computed once and cached."""

    def __init__(self, spec: SupernetSpec) -> None:
        self.spec = spec
        self._blocks: dict[tuple, int] = {}

    def stage_input_size(self, stage: int, resolution: int) -> int:
        """Spatial length (per dim) entering `stage` for a net input of `resolution`."""
        size = _out(resolution, self.spec.stem_stride)
        for s in range(stage):
            size = _out(size, self.spec.stage_strides[s])
        return size

    def block_flops(self, stage: int, index: int, kernel: int, expand: float, resolution: int) -> int:
        """FLOPs of block `index` of `stage` at (kernel, expand) for a net input of `resolution`."""
        key = (stage, index, kernel, expand, resolution)
        if key not in self._blocks:
            spec, d = self.spec, self.spec.dims
            g = block_geometry(spec, stage, index)
            size = self.stage_input_size(stage, resolution)
            if index > 0:
                size = _out(size, spec.stage_strides[stage])
            p_in, p_out = size ** d, _out(size, g["stride"]) ** d
            mid = spec.mid_channels(g["cin"], expand)
            macs = p_in * g["cin"] * mid + p_out * mid * kernel ** d + p_out * mid * g["cout"]
            if g["se"]:
                macs += 2 * mid * spec.se_channels(mid)
            self._blocks[key] = 2 * macs
        return self._blocks[key]

    def fixed_flops(self, resolution: int) -> int:
        """Stem, first block, head 1x1, feature layer and classifier: the layers every sub-net runs."""
        spec, d = self.spec, self.spec.dims
        p = _out(resolution, spec.stem_stride) ** d
        macs = p * spec.in_channels * spec.stem_channels * STEM_KERNEL ** d
        if spec.first_block_channels:
            macs += p * spec.stem_channels * (FIRST_BLOCK_KERNEL ** d + spec.first_block_channels)
        p_last = _out(self.stage_input_size(spec.num_stages - 1, resolution), spec.stage_strides[-1]) ** d
        macs += p_last * spec.stage_widths[-1] * spec.head_channels
        last = spec.head_channels
        if spec.feature_channels:
            macs += last * spec.feature_channels
            last = spec.feature_channels
        return 2 * (macs + last * spec.num_classes)

    def predict(self, cfg: SubnetConfig) -> int:
        """FLOPs of one sample through the sub-net `cfg` (fixed layers + its active blocks)."""
        r = cfg.resolution
        return self.fixed_flops(r) + sum(self.block_flops(s, i, cfg.kernels[b], cfg.expands[b], r)
                                         for s, i, b in cfg.active_blocks(self.spec))
