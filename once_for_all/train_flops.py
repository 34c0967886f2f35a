"""Training FLOPs of sub-nets, counted exactly with FlopCounterMode but once per block choice, not per step.

A step's FLOPs add up over ops, so a supernet pass = fixed layers + its running blocks; each block is counted
in isolation once per (block, kernel, expand, batch shape). Grouped-convolution backward is counted with
`meter.flops.FLOP_FIXES` (torch's own formula counts it as if dense).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from meter.flops import FLOP_FIXES

from .space import ArchSpace, SubnetConfig


def _count(module: nn.Module, x: torch.Tensor, backward: bool, private: bool = False) -> int:
    """FlopCounterMode FLOPs of module(x) (+ backward of its sum), grouped-conv backward corrected; on a copy
    unless the module is `private` (then its gradients are cleared after)."""
    module = module if private else copy.deepcopy(module)
    # FLOPs do not depend on values; fork the RNG so counting (dropout) never shifts training's random stream
    with torch.random.fork_rng(devices=[]), FlopCounterMode(display=False, custom_mapping=FLOP_FIXES) as mode:
        out = module(x)
        if backward:
            out.float().sum().backward()
    if private:
        module.zero_grad(set_to_none=True)
    return int(mode.get_total_flops())


class TrainFlops:
    """FLOPs (FlopCounterMode: forward, + backward if asked) of one pass of a batch `x` through a sub-net.

    Exact and cheap: FLOPs add up over ops, so a supernet pass = fixed layers + its running blocks, each block
    counted once in isolation per (block, kernel, expand, batch shape) on an input that requires grad (as it
    does inside the net), the fixed layers once per batch shape (whole net minus its blocks). A static module
    (cfg None) is counted whole, once per (module, batch shape). Keep one instance per supernet spec.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple, int] = {}
        self._work: dict = {}  # spec -> a private copy of the supernet to count on
        self._shapes: dict[tuple, dict[int, tuple]] = {}

    def _get(self, key: tuple, fn: Callable[[], int]) -> int:
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def __call__(self, model: nn.Module, cfg: SubnetConfig | None, x: torch.Tensor, backward: bool = True) -> int:
        shape = tuple(x.shape)
        if cfg is None:
            return self._get((id(model), shape, backward), lambda: _count(model, x, backward))
        spec = model.spec
        if spec not in self._work:
            # eval: a forward for shapes updates no BN stats; grads on: the first model seen may be a frozen teacher
            self._work[spec] = copy.deepcopy(model).eval().requires_grad_(True)
        work = self._work[spec]
        full = replace(ArchSpace.full(spec).largest(), resolution=cfg.resolution)
        shapes = self._block_shapes(work, full, x)
        total = self._get((spec, "fixed", shape, backward), lambda: self._fixed(work, full, x, shapes, backward))
        for _, _, b in cfg.active_blocks(spec):
            total += self._block(work, full, b, cfg.kernels[b], cfg.expands[b], shapes[b], x.dtype, backward)
        return total

    def _block_shapes(self, work: nn.Module, full: SubnetConfig, x: torch.Tensor) -> dict[int, tuple]:
        key = (work.spec, tuple(x.shape))
        if key not in self._shapes:
            seen: dict[int, tuple] = {}
            hooks = [blk.register_forward_pre_hook(lambda m, a, b=b: seen.__setitem__(b, tuple(a[0].shape)))
                     for b, blk in enumerate(work.blocks)]
            work.set_active(full)
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                work(x)
            for h in hooks:
                h.remove()
            self._shapes[key] = seen
        return self._shapes[key]

    def _block(self, work, full, b: int, k: int, e: float, shape: tuple, dtype, backward: bool) -> int:
        def count() -> int:
            work.set_active(replace(full, kernels=full.kernels[:b] + (k,) + full.kernels[b + 1:],
                                    expands=full.expands[:b] + (e,) + full.expands[b + 1:]))
            return _count(work.blocks[b], torch.zeros(shape, dtype=dtype, requires_grad=backward), backward, True)

        return self._get((work.spec, b, k, e, shape, backward), count)

    def _fixed(self, work, full: SubnetConfig, x: torch.Tensor, shapes, backward: bool) -> int:
        blocks = sum(self._block(work, full, b, full.kernels[b], full.expands[b], shapes[b], x.dtype, backward)
                     for _, _, b in full.active_blocks(work.spec))
        work.set_active(full)
        return _count(work, x, backward, True) - blocks
