"""Evaluating sub-networks for the `ofa` task: BN recalibration on a fixed seeded subset, accuracy on a split,
deployment costs (FLOPs, latency, energy per inference) of an exported sub-net, and width-multiplier models.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from once_for_all import ArchSpace, SubnetConfig, SupernetSpec
from once_for_all.bn import recalibrate_bn
from once_for_all.efficiency import energy_per_inference, measure_latency
from once_for_all.flops import FlopsTable
from once_for_all.supernet import OFASupernet, resize_input


def as_channels(x: torch.Tensor, dims: int) -> torch.Tensor:
    """[N, L] -> [N, 1, L] (1-D) or [N, H*W] -> [N, 1, H, W] (2-D, square); tensors with channels pass through."""
    if x.dim() == dims + 2:
        return x
    if dims == 1:
        return x.reshape(len(x), 1, -1)
    side = math.isqrt(x[0].numel())
    if side * side != x[0].numel():
        raise ValueError(f"model.dims=2 needs square images; got samples of {x[0].numel()} values")
    return x.reshape(len(x), 1, side, side)


def recalibration_set(x_train: torch.Tensor, samples: int, batches: int, seed: int) -> list[torch.Tensor]:
    """A fixed, seeded subset of `samples` training inputs in `batches` equal batches (OFA: 2,000 in 10)."""
    samples = min(samples, len(x_train))
    idx = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed))[:samples]
    return list(x_train[idx].chunk(batches))


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, resolution: int, batch: int = 500) -> float:
    """Top-1 accuracy of `model` in eval mode on x resized to `resolution`."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((model(resize_input(x[i:i + batch], resolution)).argmax(1) == y[i:i + batch]).sum())
    model.train(was_training)
    return correct / len(x)


def recalibrate(model: torch.nn.Module, recal: list[torch.Tensor], resolution: int) -> None:
    recalibrate_bn(model, [resize_input(b, resolution) for b in recal])


def evaluate_subnet(net: OFASupernet, cfg: SubnetConfig, recal: list[torch.Tensor], x: torch.Tensor,
                    y: torch.Tensor) -> float:
    """Accuracy of the sub-net `cfg` taken from `net` after BN recalibration (without it every sub-net looks
    broken: the running statistics are the full network's)."""
    net.set_active(cfg)
    recalibrate(net, recal, cfg.resolution)
    return accuracy(net, x, y, cfg.resolution)


def deployment_costs(model: torch.nn.Module, spec: SupernetSpec, cfg: SubnetConfig, meter, *, batch: int,
                     repeats: int, table=None) -> dict:
    """FLOPs (analytic table), latency at batch 1 and `batch` (median), and energy per inference of an exported
    sub-net on this machine; with a latency `table`, its prediction and relative error beside the measurement."""
    x1 = torch.randn(1, spec.in_channels, *(cfg.resolution,) * spec.dims)
    xb = x1.expand(batch, *x1.shape[1:]).contiguous()
    row = {
        "latency/b1_ms": 1e3 * measure_latency(model, x1, warmup=5, repeats=repeats),
        f"latency/b{batch}_ms": 1e3 * measure_latency(model, xb, warmup=3, repeats=max(5, repeats // 3)),
        "latency/num_threads": torch.get_num_threads(),
    }
    if table is not None:
        predicted = 1e3 * table.predict(cfg)
        row |= {"latency/b1_table_ms": predicted,
                "latency/table_rel_error": (predicted - row["latency/b1_ms"]) / row["latency/b1_ms"]}
    energy = energy_per_inference(model, xb, meter, repeats=max(10, repeats), name="inference")
    row |= {"infer/joules_per_sample": energy["energy/joules_per_sample"],
            "infer/energy_method": energy["energy/method"], "infer/energy_estimated": energy["energy/estimated"]}
    return row


def scaled_spec(spec: SupernetSpec, multiplier: float) -> SupernetSpec:
    """The full network with every stage width (and the stem and head) multiplied by `multiplier` (>= 1 channel)."""
    def scale(c: int) -> int:
        return max(1, int(round(c * multiplier)))

    return replace(spec, stem_channels=scale(spec.stem_channels),
                   stage_widths=tuple(scale(w) for w in spec.stage_widths), head_channels=scale(spec.head_channels),
                   resolutions=(max(spec.resolutions),))


def width_multiplier_for(spec: SupernetSpec, budget_flops: float, tolerance: float = 1e-3) -> tuple[float, int]:
    """The largest width multiplier m in (0, 1] whose full network costs <= `budget_flops` (bisection on the
    analytic table); returns (m, its FLOPs). ValueError naming the cheapest reachable cost when none fits."""
    def flops(m: float) -> int:
        s = scaled_spec(spec, m)
        return FlopsTable(s).predict(ArchSpace.full(s).largest())

    lo, hi = 1e-3, 1.0
    if flops(lo) > budget_flops:
        raise ValueError(f"no width multiplier fits {budget_flops:.4g} FLOPs; the cheapest (m={lo}) costs {flops(lo)}")
    if flops(hi) <= budget_flops:
        return hi, flops(hi)
    while hi - lo > tolerance:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if flops(mid) <= budget_flops else (lo, mid)
    return lo, flops(lo)
