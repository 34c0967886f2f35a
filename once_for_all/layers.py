"""MobileNetV3 inverted-residual blocks in 1-D and 2-D: a static `MBBlock` and its elastic supernet form.

Block: [expand 1x1 -> BN -> act] -> depthwise kxk (stride) -> BN -> act -> [squeeze-excite] -> project 1x1 -> BN,
plus the identity shortcut when stride is 1 and channels match. x: [B, C, L] (dims=1) or [B, C, H, W] (dims=2).

The static block's forward is plain module calls. The elastic block runs the same layers functionally with
`conv_weights()`: slices of its maximal weights (first `mid` channels) and its depthwise kernel through OFA's
kernel-transformation matrices; its BN layers slice themselves to the width of their input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FCONV = {1: F.conv1d, 2: F.conv2d}
CONV = {1: nn.Conv1d, 2: nn.Conv2d}
ACTS = {"relu": nn.ReLU, "hswish": nn.Hardswish}


class _ElasticBN:
    """BatchNorm over the first x.shape[1] of its channels (running stats updated in place on that slice), with
    nn.BatchNorm's momentum rules; at full width it is exactly the parent class."""

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[1]
        if n == self.num_features:
            return super().forward(x)
        factor = 0.0
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        stats = (None, None) if self.running_mean is None else (self.running_mean[:n], self.running_var[:n])
        return F.batch_norm(x, *stats, self.weight[:n], self.bias[:n],
                            self.training or self.running_mean is None, factor, self.eps)


BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}
ELASTIC_BN = {d: type(f"Elastic{bn.__name__}", (_ElasticBN, bn), {}) for d, bn in BN.items()}


def conv_bn(dims: int, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: str | None = None,
            elastic: bool = False) -> nn.Sequential:
    """conv (no bias, padding k//2) -> BN [-> act]; children 0, 1[, 2]."""
    layers = [CONV[dims](cin, cout, k, stride, k // 2, groups=groups, bias=False),
              (ELASTIC_BN if elastic else BN)[dims](cout)]
    return nn.Sequential(*layers, *([ACTS[act]()] if act else []))


def apply_conv_bn(seq: nn.Sequential, x: Tensor, weight: Tensor, groups: int = 1) -> Tensor:
    """Run a `conv_bn` Sequential with `weight` in place of its conv's own (same stride, padding k//2)."""
    conv = seq[0]
    h = FCONV[weight.dim() - 2](x, weight, None, conv.stride, weight.shape[-1] // 2, 1, groups)
    for m in list(seq)[1:]:
        h = m(h)
    return h


class SqueezeExcite(nn.Module):
    """x * hsigmoid(W2 relu(W1 mean(x) + b1) + b2); x: [B, C, *spatial]."""

    def __init__(self, channels: int, mid: int) -> None:
        super().__init__()
        self.reduce = nn.Linear(channels, mid)
        self.expand = nn.Linear(mid, channels)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x, *self.params())

    def params(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.reduce.weight, self.reduce.bias, self.expand.weight, self.expand.bias

    @staticmethod
    def gate(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
        s = x.mean(dim=tuple(range(2, x.dim())))
        s = F.hardsigmoid(F.linear(F.relu(F.linear(s, w1, b1)), w2, b2))
        return s.view(*s.shape, *([1] * (x.dim() - 2)))


class MBBlock(nn.Module):
    """Static inverted-residual block. `expand=False` drops the expand 1x1 (mid must equal cin); se_mid=0: no SE."""

    def __init__(self, dims: int, cin: int, mid: int, cout: int, kernel: int, stride: int, se_mid: int, act: str,
                 expand: bool = True, elastic: bool = False) -> None:
        super().__init__()
        if not expand and mid != cin:
            raise ValueError(f"MBBlock without expand conv needs mid == cin; got mid={mid}, cin={cin}")
        self.dims = dims
        self.expand = conv_bn(dims, cin, mid, 1, act=act, elastic=elastic) if expand else None
        self.depthwise = conv_bn(dims, mid, mid, kernel, stride, groups=mid, act=act, elastic=elastic)
        self.se = SqueezeExcite(mid, se_mid) if se_mid else None
        self.project = conv_bn(dims, mid, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        h = x if self.expand is None else self.expand(x)
        h = self.depthwise(h)
        if self.se is not None:
            h = self.se(h)
        h = self.project(h)
        return x + h if self.residual else h


class ElasticMBBlock(MBBlock):
    """Supernet block at maximal width and kernel; runs (active_kernel, active_expand) set by the supernet.

    mid_fn / se_fn map an expand ratio / a mid width to channel counts (SupernetSpec.mid_channels/se_channels).
    Kernel k < k_max: centre crop of the next larger kernel, flattened to [mid, k**dims] and multiplied by a
    learned k**dims x k**dims matrix (identity at init), chained k_max -> ... -> k as in OFA.
    """

    def __init__(self, dims: int, cin: int, cout: int, stride: int, se: bool, act: str,
                 kernel_sizes: tuple[int, ...], expand_ratios: tuple[float, ...], mid_fn, se_fn) -> None:
        self.kernel_sizes, self.expand_ratios = tuple(sorted(kernel_sizes)), tuple(sorted(expand_ratios))
        self.mid_fn, self.se_fn = mid_fn, se_fn
        mid = mid_fn(self.expand_ratios[-1])
        super().__init__(dims, cin, mid, cout, self.kernel_sizes[-1], stride, se_fn(mid) if se else 0, act,
                         elastic=True)
        ks = self.kernel_sizes[::-1]
        self.transforms = nn.ParameterDict({f"{a}to{b}": nn.Parameter(torch.eye(b ** dims))
                                            for a, b in zip(ks, ks[1:])})
        self.active_kernel, self.active_expand = self.kernel_sizes[-1], self.expand_ratios[-1]

    def kernel(self, k: int, mid: int) -> Tensor:
        """Depthwise weight [mid, 1, k(, k)] of kernel size k, built from the k_max weight."""
        if k not in self.kernel_sizes:
            raise ValueError(f"kernel {k} not in this block's kernel_sizes {list(self.kernel_sizes)}")
        w = self.depthwise[0].weight[:mid]
        ks = self.kernel_sizes[::-1]
        for src, dst in zip(ks, ks[1:]):
            if src == k:
                break
            lo = (src - dst) // 2
            crop = w[(slice(None), slice(None)) + (slice(lo, lo + dst),) * self.dims]
            w = F.linear(crop.reshape(-1, dst ** self.dims), self.transforms[f"{src}to{dst}"]).view(crop.shape)
        return w

    def conv_weights(self) -> tuple[Tensor, Tensor, tuple[Tensor, ...] | None, Tensor]:
        """(expand, depthwise, SE params | None, project) weights of the active (kernel, expand)."""
        mid = self.mid_fn(self.active_expand)
        se = None
        if self.se is not None:
            s = self.se_fn(mid)
            w1, b1, w2, b2 = self.se.params()
            se = (w1[:s, :mid], b1[:s], w2[:mid, :s], b2[:mid])
        return (self.expand[0].weight[:mid], self.kernel(self.active_kernel, mid), se,
                self.project[0].weight[:, :mid])

    def forward(self, x: Tensor) -> Tensor:
        we, wd, se, wp = self.conv_weights()
        h = apply_conv_bn(self.expand, x, we)
        h = apply_conv_bn(self.depthwise, h, wd, groups=wd.shape[0])
        if se is not None:
            h = h * SqueezeExcite.gate(h, *se)
        h = apply_conv_bn(self.project, h, wp)
        return x + h if self.residual else h

    def static_state(self) -> dict[str, Tensor]:
        """State dict of the static MBBlock equal to the active configuration; differentiable w.r.t. this
        block's parameters (export detaches; tests use it to map gradients)."""
        we, wd, se, wp = self.conv_weights()
        mid = wd.shape[0]
        out = {"expand.0.weight": we, "depthwise.0.weight": wd, "project.0.weight": wp}
        for name, t in self.state_dict(keep_vars=True).items():
            if name.startswith(("expand.1.", "depthwise.1.")):
                out[name] = t[:mid] if t.dim() == 1 else t
            elif name.startswith("project.1."):
                out[name] = t
        if se is not None:
            out.update(zip(("se.reduce.weight", "se.reduce.bias", "se.expand.weight", "se.expand.bias"), se))
        return out
