"""Analytic FLOPs of an MoE layer (1 multiply-add = 2 FLOPs, as FlopCounterMode) and a FlopCounterMode
formula for grouped_mm, which PyTorch otherwise counts as 0.

`matmul_forward` (router + expert rows executed + shared experts) equals FlopCounterMode on the `loop`
backend exactly; `useful` counts only rows that reached an expert, `executed` adds backend padding.
`dispatch` is the element-wise combine (one multiply and one add per routed row element), which
FlopCounterMode does not count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import flop_registry, register_flop_formula

from .layer import MoEAux, MoELayer


@dataclass(frozen=True)
class MoEFlops:
    router: int
    experts_useful: int
    experts_executed: int
    shared: int
    dispatch: int
    experts_dense: int  # every expert on every token: the bound "sparse" is compared with

    @property
    def useful(self) -> int:
        return self.router + self.experts_useful + self.shared

    @property
    def executed(self) -> int:
        return self.router + self.experts_executed + self.shared

    @property
    def matmul_forward(self) -> int:
        return self.executed


def layer_flops(layer: MoELayer, aux: MoEAux) -> MoEFlops:
    """Forward FLOPs of the call that produced `aux`. Backward matmuls cost 2x (grad input + grad weight)
    when the layer input requires grad; use `training_flops` for forward + backward."""
    row = layer.experts.row_flops()
    kept = int(aux.tokens_per_expert.sum())
    return MoEFlops(
        router=layer.router.flops(aux.num_tokens),
        experts_useful=row * kept,
        experts_executed=row * aux.rows_executed,
        shared=sum(f.row_flops() for f in layer.shared) * aux.num_tokens,
        dispatch=2 * kept * layer.d_model,
        experts_dense=row * layer.cfg.num_experts * aux.num_tokens,
    )


def training_flops(layer: MoELayer, aux: MoEAux) -> int:
    """Forward + backward matmul FLOPs (3x forward), the count FlopCounterMode gives on the loop backend."""
    return 3 * layer_flops(layer, aux).matmul_forward


def _grouped_mm_flop(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    # Every output element is a K-long dot product except when both operands are 2D (weight gradient):
    # then out is [G, K, N], and the groups partition the contracted dim of length a_shape[1].
    if len(a_shape) == 2 and len(b_shape) == 2:
        return 2 * a_shape[0] * a_shape[1] * b_shape[1]
    k = a_shape[-1]
    n = 1
    for s in out_shape:
        n *= s
    return 2 * n * k


def register_grouped_mm_flops() -> bool:
    """Register the grouped_mm formula once; True if registered now or before."""
    op = getattr(torch.ops.aten, "_grouped_mm", None)
    if op is None:
        return False
    if op not in flop_registry:
        register_flop_formula(op)(_grouped_mm_flop)
    return True


register_grouped_mm_flops()


def flops_stats(layers: list[MoELayer], auxes: list[MoEAux], prefix: str = "moe") -> dict[str, int]:
    """Per-layer forward FLOPs for logging: `<prefix>/layer<i>/flops_{useful,executed,dense,dispatch}`."""
    out = {}
    for i, (layer, aux) in enumerate(zip(layers, auxes)):
        fl = layer_flops(layer, aux)
        out.update({
            f"{prefix}/layer{i}/flops_useful": fl.useful,
            f"{prefix}/layer{i}/flops_executed": fl.executed,
            f"{prefix}/layer{i}/flops_dense": fl.router + fl.experts_dense + fl.shared,
            f"{prefix}/layer{i}/flops_dispatch": fl.dispatch,
        })
    return out
