"""Baselines run in the same harness as the learned policy: same backbones, same really-skipping execution,
same per-video FLOPs accounting. Each is `baseline(clips, informative=None) -> VideoResult`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from meter.registry import Registry

from .data.sampling import tsn_indices
from .flops import video_flops
from .inference import VideoResult, resize, run_assigned
from .model import AdaptiveFrameModel

BASELINES: Registry[Callable[..., Callable[..., VideoResult]]] = Registry("baseline")


def _check_res(model: AdaptiveFrameModel, res_index: int) -> None:
    if not 0 <= res_index < model.space.num_resolutions:
        raise ValueError(f"res_index={res_index} must be in [0, {model.space.num_resolutions}) "
                         f"(resolutions {model.space.resolutions})")


def _run(model: AdaptiveFrameModel, clips: torch.Tensor, assign: torch.Tensor) -> VideoResult:
    with torch.no_grad():
        was = model.training
        model.eval()
        logits, per_res = run_assigned(model.backbones, model.space.resolutions, clips, assign, model.cfg.num_classes)
        model.train(was)
    looked = torch.zeros(clips.shape[0], dtype=torch.long)
    return VideoResult(logits=logits, looked=looked, per_res=per_res, flops=video_flops(model.costs(), looked, per_res))


@BASELINES.register("uniform")
def uniform(model: AdaptiveFrameModel, k: int, res_index: int = 0) -> Callable[..., VideoResult]:
    """k frames by TSN centre sampling, all at resolution `res_index`."""
    _check_res(model, res_index)
    if k < 1:
        raise ValueError(f"uniform: k={k} must be >= 1")

    def run(clips: torch.Tensor, informative: torch.Tensor | None = None) -> VideoResult:
        b, t = clips.shape[:2]
        assign = torch.full((b, t), -1, dtype=torch.long)
        assign[:, tsn_indices(t, min(k, t), train=False)] = res_index
        return _run(model, clips, assign)

    return run


@BASELINES.register("dense_top")
def dense_top(model: AdaptiveFrameModel) -> Callable[..., VideoResult]:
    """Every frame at the highest resolution: the accuracy reference and the FLOPs bound."""
    def run(clips: torch.Tensor, informative: torch.Tensor | None = None) -> VideoResult:
        return _run(model, clips, torch.zeros(clips.shape[:2], dtype=torch.long))

    return run


@BASELINES.register("random")
def random_policy(model: AdaptiveFrameModel, probs: tuple[float, ...], seed: int = 0) -> Callable[..., VideoResult]:
    """Each frame independently goes to backbone i with probability probs[i], else is skipped; no policy cost.
    Choose probs so that sum_i probs[i] * T * cost_i matches the budget being compared with."""
    if len(probs) != model.space.num_resolutions or any(p < 0 for p in probs) or sum(probs) > 1 + 1e-9:
        raise ValueError(f"random: probs={probs} must be {model.space.num_resolutions} non-negative values summing to <= 1")
    g = torch.Generator().manual_seed(seed)
    edges = torch.tensor(probs, dtype=torch.float64).cumsum(0)

    def run(clips: torch.Tensor, informative: torch.Tensor | None = None) -> VideoResult:
        u = torch.rand(clips.shape[:2], generator=g, dtype=torch.float64)
        assign = torch.searchsorted(edges, u, right=True)  # index of first edge > u
        return _run(model, clips, torch.where(assign < len(probs), assign, -1))

    return run


@BASELINES.register("oracle")
def oracle(model: AdaptiveFrameModel, res_index: int = 0) -> Callable[..., VideoResult]:
    """Upper bound: exactly the ground-truth informative frames at resolution `res_index` (synthetic data only)."""
    _check_res(model, res_index)

    def run(clips: torch.Tensor, informative: torch.Tensor | None = None) -> VideoResult:
        if informative is None:
            raise ValueError("oracle baseline needs the ground-truth informative-frame mask [B, T]")
        return _run(model, clips, torch.where(informative, res_index, -1))

    return run


def coarse_to_fine(num_frames: int) -> list[int]:
    """Frame order that refines temporal coverage: middle first, then midpoints of the gaps (FrameExit)."""
    order, seen, parts = [], set(), 1
    while len(order) < num_frames:
        for j in range(parts):
            i = min(num_frames - 1, int((2 * j + 1) * num_frames / (2 * parts)))
            if i not in seen:
                seen.add(i)
                order.append(i)
        parts *= 2
        if parts > 2 * num_frames:
            order += [i for i in range(num_frames) if i not in seen]
    return order


@BASELINES.register("frame_exit")
def frame_exit(model: AdaptiveFrameModel, threshold: float, res_index: int = 0) -> Callable[..., VideoResult]:
    """Early exit: frames in coarse-to-fine order at one resolution; a video stops once the max softmax
    probability of its running mean logits reaches `threshold`. Exited videos cost nothing more."""
    _check_res(model, res_index)
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"frame_exit: threshold={threshold} must be in (0, 1]")
    net, size = model.backbones[res_index], model.space.resolutions[res_index]

    def run(clips: torch.Tensor, informative: torch.Tensor | None = None) -> VideoResult:
        b, t = clips.shape[:2]
        total = clips.new_zeros(b, model.cfg.num_classes)
        count = torch.zeros(b, dtype=torch.long)
        active = torch.ones(b, dtype=torch.bool)
        was = model.training
        model.eval()
        with torch.no_grad():
            for i in coarse_to_fine(t):
                idx = active.nonzero(as_tuple=True)[0]
                if idx.numel() == 0:
                    break
                total = total.index_add(0, idx, net(resize(clips[idx, i], size)))
                count[idx] += 1
                conf = F.softmax(total[idx] / count[idx, None], dim=1).amax(dim=1)
                active[idx[conf >= threshold]] = False
        model.train(was)
        per_res = torch.zeros(b, model.space.num_resolutions, dtype=torch.long)
        per_res[:, res_index] = count
        looked = torch.zeros(b, dtype=torch.long)
        logits = total / count.clamp(min=1)[:, None]
        return VideoResult(logits=logits, looked=looked, per_res=per_res, flops=video_flops(model.costs(), looked, per_res))

    return run


def build_baseline(name: str, model: AdaptiveFrameModel, **kwargs) -> Callable[..., VideoResult]:
    return BASELINES.get(name)(model, **kwargs)
