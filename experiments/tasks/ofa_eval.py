"""Evaluating sub-networks for the `ofa` task: BN recalibration on a fixed seeded subset, accuracy on a split,
deployment costs (FLOPs, latency, energy per inference) of an exported sub-net, and width-multiplier models.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import replace

import torch

from once_for_all import ArchSpace, SubnetConfig, SupernetSpec
from once_for_all.bn import recalibrate_bn
from once_for_all.efficiency import TIMERS, LatencyTable, energy_per_inference, measure_latency
from once_for_all.export import export_subnet
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


def device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, resolution: int, batch: int = 500) -> float:
    """Top-1 accuracy of `model` in eval mode on x resized to `resolution`, computed on the model's device (the
    host tensors are copied over a batch at a time)."""
    was_training = model.training
    model.eval()
    correct, device = 0, device_of(model)
    for i in range(0, len(x), batch):
        xb = resize_input(x[i:i + batch].to(device, non_blocking=True), resolution)
        correct += int((model(xb).argmax(1) == y[i:i + batch].to(device)).sum())
    model.train(was_training)
    return correct / len(x)


def recalibrate(model: torch.nn.Module, recal: list[torch.Tensor], resolution: int) -> None:
    """BN statistics of the sub-net `model` runs, from the fixed recalibration batches, on the model's device."""
    device = device_of(model)
    recalibrate_bn(model, (resize_input(b.to(device, non_blocking=True), resolution) for b in recal))


def on_device(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` itself when it is on `device`, else a copy there (the module the caller holds stays where it is)."""
    return model if device_of(model) == torch.device(device) else copy.deepcopy(model).to(device)


def evaluate_subnet(net: OFASupernet, cfg: SubnetConfig, recal: list[torch.Tensor], x: torch.Tensor,
                    y: torch.Tensor) -> float:
    """Accuracy of the sub-net `cfg` taken from `net` after BN recalibration (without it every sub-net looks
    broken: the running statistics are the full network's)."""
    net.set_active(cfg)
    recalibrate(net, recal, cfg.resolution)
    return accuracy(net, x, y, cfg.resolution)


def deployment_costs(model: torch.nn.Module, spec: SupernetSpec, cfg: SubnetConfig, meter, *, batch: int,
                     repeats: int, table: LatencyTable | None = None, device: torch.device | str = "cpu") -> dict:
    """FLOPs (analytic table), wall latency at batch 1 and `batch` (median; an accelerator synchronised), and energy
    per inference of an exported sub-net on `device` (a copy of the model when it lives elsewhere); with a latency
    `table`, its prediction and relative error against a measurement with the table's timer (thread CPU time as
    well when the table used it)."""
    device = torch.device(device)
    model = on_device(model, device)
    x1 = torch.randn(1, spec.in_channels, *(cfg.resolution,) * spec.dims).to(device)
    xb = x1.expand(batch, *x1.shape[1:]).contiguous()
    row = {
        "latency/b1_ms": 1e3 * measure_latency(model, x1, warmup=5, repeats=repeats),
        f"latency/b{batch}_ms": 1e3 * measure_latency(model, xb, warmup=3, repeats=max(5, repeats // 3)),
        "latency/num_threads": torch.get_num_threads(), "latency/device": str(device),
    }
    if table is not None:
        measured = row["latency/b1_ms"]
        if table.timer == "thread_cpu":
            measured = row["latency/b1_cpu_ms"] = 1e3 * measure_latency(model, x1, warmup=5, repeats=repeats,
                                                                         timer=TIMERS["thread_cpu"])
        predicted = 1e3 * table.predict(cfg)
        row |= {"latency/b1_table_ms": predicted, "latency/table_timer": table.timer,
                "latency/table_rel_error": (predicted - measured) / measured}
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


def full_net_flops(spec: SupernetSpec, multiplier: float, repeats: int = 0, timer: str = "wall",
                   device: torch.device | str = "cpu") -> int:
    """Analytic FLOPs of the full network at width `multiplier` (`repeats`, `timer`, `device`: unused; WIDTH_COSTS'
    signature)."""
    s = scaled_spec(spec, multiplier)
    return FlopsTable(s).predict(ArchSpace.full(s).largest())


def full_net_latency_ms(spec: SupernetSpec, multiplier: float, repeats: int = 30, timer: str = "wall",
                        device: torch.device | str = "cpu") -> float:
    """Measured batch-1 latency (median, ms, a TIMERS `timer`) of the full network at width `multiplier`, exported,
    on `device` (the weights are a fresh init: latency does not depend on their values)."""
    s = scaled_spec(spec, multiplier)
    model = export_subnet(OFASupernet(s), ArchSpace.full(s).largest()).eval().to(device)
    x = torch.randn(1, s.in_channels, *(max(s.resolutions),) * s.dims).to(device)
    return 1e3 * measure_latency(model, x, warmup=5, repeats=repeats, timer=TIMERS[timer])


# method.target_metric -> the cost of the full net at width multiplier m, for the width-multiplier baseline
WIDTH_COSTS: dict[str, Callable[..., float]] = {"flops": full_net_flops, "latency_ms": full_net_latency_ms}


def width_multiplier_for(spec: SupernetSpec, budget: float, cost: Callable[[float], float] | None = None,
                         tolerance: float = 1e-3) -> tuple[float, float]:
    """The largest width multiplier m in (0, 1] whose full network's `cost(m)` (default: analytic FLOPs) is
    <= `budget` (bisection; `cost` must grow with m); returns (m, its cost). ValueError naming the cheapest
    reachable cost when none fits."""
    cost = cost or (lambda m: full_net_flops(spec, m))
    lo, hi = 1e-3, 1.0
    lo_cost = cost(lo)  # each multiplier is priced once: a measured cost would differ on a second call
    if lo_cost > budget:
        raise ValueError(f"no width multiplier fits a cost of {budget:.4g}; the cheapest (m={lo}) costs {lo_cost:.4g}")
    if (hi_cost := cost(hi)) <= budget:
        return hi, hi_cost
    while hi - lo > tolerance:
        mid = (lo + hi) / 2
        if (mid_cost := cost(mid)) <= budget:
            lo, lo_cost = mid, mid_cost
        else:
            hi = mid
    return lo, lo_cost
