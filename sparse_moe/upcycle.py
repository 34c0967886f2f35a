"""`moefy`: turn the FFNs of an existing model into MoE layers, optionally upcycled from the dense weights.

    model = moefy(model, match="blocks.*.mlp", num_experts=8, top_k=1)   # in place; returns the model
    out = model(x)                                                         # same call signature as before
    loss = task_loss(out) + total_aux_loss(collect_aux(model))             # router losses, explicitly

Sparse Upcycling (Komatsuzaki et al. 2022): every expert starts as a copy of the dense FFN it replaces. The
layer's output is sum_i w_i * expert_i(x), so it equals the dense FFN exactly when the k combine weights sum
to 1; the default `gate_norm="detached_sum"` makes their value sum to 1 while the router keeps Switch's task
gradient (see `sparse_moe.routers.GATE_NORMS`). With top_k = 1 the combine weight is p / p = 1.0 exactly, so at
step 0 the upcycled model computes the dense model's function: the same sums, in fp64 equal to rounding (the
per-expert matmuls run other BLAS kernels than one dense matmul; tests/sparse_moe/test_upcycle.py). With
gate_norm="none", Switch's top-1 output would be p * FFN(x), p ~ 1/E at init.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

import torch
from torch import nn

from .ffn_spec import DenseSpec, ffn_spec
from .layer import MoEAux, MoELayer

Match = str | Callable[[str, nn.Module], bool]


class MoEFFN(nn.Module):
    """Drop-in for a dense FFN module: x [..., d] -> y [..., d], a tensor like the module it replaced.

    The routing losses of the last forward wait in `aux` until `collect_aux(model)` takes them (the replaced
    module's callers expect a tensor, so they cannot be returned). `dropout` is the dense FFN's output dropout.
    """

    def __init__(self, layer: MoELayer, dropout: nn.Module | None = None) -> None:
        super().__init__()
        self.layer = layer
        self.dropout = dropout if dropout is not None else nn.Identity()
        self.aux: MoEAux | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, self.aux = self.layer(x)
        return self.dropout(y)

    def __getstate__(self):
        # A pending aux holds graph tensors, which neither deepcopy nor pickle accept: never part of the state.
        return {**self.__dict__, "aux": None}


def collect_aux(model: nn.Module) -> list[MoEAux]:
    """The `MoEAux` of every MoEFFN's last forward, in module order, and clears them (take once per step)."""
    auxes = []
    for m in model.modules():
        if isinstance(m, MoEFFN) and m.aux is not None:
            auxes.append(m.aux)
            m.aux = None
    return auxes


def _matcher(match: Match) -> Callable[[str, nn.Module], bool]:
    if isinstance(match, str):
        return lambda name, module: fnmatch.fnmatchcase(name, match)
    return match


def _upcycle(layer: MoELayer, spec: DenseSpec) -> None:
    """Every expert := the dense FFN (weights laid out [d, f] / [f, d] like `Experts`)."""
    ex = layer.experts
    with torch.no_grad():
        ex.w1.copy_(spec.w1.expand_as(ex.w1))
        ex.w2.copy_(spec.w2.expand_as(ex.w2))
        if ex.b1 is not None:
            ex.b1.copy_(spec.b1.expand_as(ex.b1) if spec.b1 is not None else torch.zeros_like(ex.b1))
            ex.b2.copy_(spec.b2.expand_as(ex.b2) if spec.b2 is not None else torch.zeros_like(ex.b2))


def moefy(
    model: nn.Module,
    match: Match,
    num_experts: int = 8,
    top_k: int = 1,
    upcycle: bool = True,
    router: str | None = None,
    **options,
) -> nn.Module:
    """Replace every module whose qualified name matches `match` (an fnmatch glob such as "blocks.*.mlp", or a
    predicate `(name, module) -> bool`) with a `MoEFFN`, in place; returns `model`.

    A matched module must be a dense FFN `ffn_spec` recognises (Linear(d->f), activation, Linear(f->d), as an
    nn.Sequential, a module with those children in that order, or `DenseFFN`); anything else raises a
    ValueError naming the module and what it holds. `options` are further `MoEConfig` fields (capacity,
    dispatch, loss coefficients...). `router` None: "switch" for top_k = 1, "mixtral" (softmax over the top k)
    otherwise. Upcycled layers default to gate_norm="detached_sum" (module docstring).
    Parameters are created on the dense FFN's device and dtype.
    """
    pred = _matcher(match)
    targets = [(name, m) for name, m in model.named_modules() if name and pred(name, m)]
    if not targets:
        names = ", ".join(name for name, _ in model.named_modules() if name)
        raise ValueError(f"moefy: match={match!r} matches no module of {type(model).__name__}; modules: {names}")
    if router is None:
        router = "switch" if top_k == 1 else "mixtral"
    if upcycle:
        options.setdefault("gate_norm", "detached_sum")
    for name, module in targets:
        spec = ffn_spec(name, module)
        layer = MoELayer(spec.d_model, spec.d_ff, num_experts, top_k=top_k, router=router,
                         activation=spec.activation, bias=spec.b1 is not None or spec.b2 is not None, **options)
        layer.to(device=spec.w1.device, dtype=spec.w1.dtype)
        if upcycle:
            _upcycle(layer, spec)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, MoEFFN(layer, spec.out_dropout).train(module.training))
    return model
