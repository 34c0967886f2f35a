"""Small supernet specs and helpers shared by the once_for_all model tests."""

import torch

from once_for_all import SupernetSpec

SPEC_1D = SupernetSpec(dims=1, in_channels=1, num_classes=5, stem_channels=4, stage_widths=(6, 8),
                       stage_strides=(1, 2), stage_se=(False, True), resolutions=(12, 16), head_channels=12,
                       stage_acts=("relu", "hswish"))
SPEC_2D = SupernetSpec(dims=2, in_channels=3, num_classes=4, stem_channels=4, stage_widths=(6, 8),
                       stage_strides=(2, 1), stage_se=(True, True), resolutions=(8, 12), head_channels=10,
                       stem_stride=2, first_block_channels=6, feature_channels=7, channel_divisor=2)
SPECS = {"1d": SPEC_1D, "2d": SPEC_2D}

# The ImageNet OFA-MobileNetV3 space (mit-han-lab/once-for-all OFAMobileNetV3, width 1.0), by config alone.
IMAGENET = SupernetSpec(dims=2, in_channels=3, num_classes=1000, stem_channels=16, stem_stride=2,
                        first_block_channels=16, stage_widths=(24, 40, 80, 112, 160), stage_strides=(2, 2, 2, 1, 2),
                        stage_se=(False, True, False, True, True),
                        stage_acts=("relu", "relu", "hswish", "hswish", "hswish"),
                        resolutions=tuple(range(128, 225, 4)), head_channels=960, feature_channels=1280,
                        channel_divisor=8)


def randomize(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every float tensor random (running_var positive), so no test passes by zeros or identities."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(net.named_parameters()) + list(net.named_buffers()):
            if not t.is_floating_point():
                continue
            r = torch.rand(t.shape, generator=g, dtype=t.dtype) + 0.5 if name.endswith("running_var") \
                else torch.randn(t.shape, generator=g, dtype=t.dtype) * 0.5
            t.copy_(r)
    return net


def inputs(spec: SupernetSpec, resolution: int, batch: int = 3, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, spec.in_channels, *(resolution,) * spec.dims, generator=g, dtype=torch.float64)
