"""FLOP counting with PyTorch's FlopCounterMode (1 multiply-add = 2 FLOPs).

Counting runs a forward (and optionally backward) pass under a dispatch mode, which is slow; callers
count once per input shape and cache (see `FlopCache`), never inside every training step.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count, sdpa_flop_count

CONVENTION = "2*MAC (torch FlopCounterMode)"


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one call. `by_module` maps a module's qualified name ("" = root) to its total."""

    forward: int
    backward: int
    by_module_forward: dict[str, int] = field(default_factory=dict)
    observed: object = None  # what `observe(output)` returned in the counted pass (e.g. the expert rows routed)

    @property
    def total(self) -> int:
        return self.forward + self.backward


def _module_totals(mode: FlopCounterMode, root_name: str) -> dict[str, int]:
    totals = {}
    for name, per_op in mode.get_flop_counts().items():
        if name == "Global":
            continue
        # FlopCounterMode names modules "<RootClass>.<fqn>"; strip the root so keys are FQNs.
        fqn = "" if name == root_name else name.removeprefix(root_name + ".")
        totals[fqn] = int(sum(per_op.values()))
    return totals


def conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                        _output_padding, _groups, output_mask, out_shape=None, **_) -> int:
    # torch's formula counts grad_input of a grouped conv as if dense (x groups: 17x a depthwise conv's forward
    # for 16 channels); each of grad_input / grad_weight costs exactly the forward's multiply-adds
    return conv_flop_count(x_shape, w_shape, grad_out_shape, transposed) * (int(output_mask[0]) + int(output_mask[1]))


def _sdpa_forward_flop(q_shape, k_shape, v_shape, *_, out_shape=None, **__) -> int:
    # q [B, Hq, L, E] @ k^T -> scores [B, Hq, L, S]; scores @ v [B, Hkv, S, Ev]: 2*B*Hq*L*S*(E + Ev)
    return sdpa_flop_count(q_shape, k_shape, v_shape)


def _sdpa_backward_flop(grad_out_shape, q_shape, k_shape, v_shape, *_, out_shape=None, **__) -> int:
    # grad of each of the forward's two matmuls costs two matmuls of its size: 2x forward, as the math backend
    # counts under autograd; a fused kernel's recomputation of the scores (torch's own formula: 2.5x) is not counted
    return 2 * sdpa_flop_count(q_shape, k_shape, v_shape)


_aten = torch.ops.aten
# Every scaled_dot_product_attention backend counts the same (one convention): the CPU fused kernel is missing
# from torch's registry (0 FLOPs without dropout), and its fused backwards count recomputation.
SDPA_OPS = {name: _sdpa_forward_flop for name in (
    "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_fused_attention_overrideable")} | {name: _sdpa_backward_flop for name in (
    "_scaled_dot_product_flash_attention_for_cpu_backward", "_scaled_dot_product_flash_attention_backward",
    "_scaled_dot_product_efficient_attention_backward", "_scaled_dot_product_cudnn_attention_backward",
    "_scaled_dot_product_fused_attention_overrideable_backward")}

FLOP_FIXES = {_aten.convolution_backward: conv_backward_flop,
              **{getattr(_aten, n): f for n, f in SDPA_OPS.items() if hasattr(_aten, n)}}


def flop_counter() -> FlopCounterMode:
    """The one FLOP counter of leanlab: torch's FlopCounterMode with `FLOP_FIXES` (grouped-conv backward, every
    SDPA backend). Causal attention is counted as the full L x S score matrix, as torch counts every attention
    kernel (a causal fused kernel skips about half of it); GQA counts the query heads."""
    return FlopCounterMode(display=False, custom_mapping=FLOP_FIXES)


def count_flops(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    loss_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    observe: Callable[[object], object] | None = None,
) -> FlopCount:
    """Count FLOPs of `model(*inputs)`; with `loss_fn`, also of `loss_fn(out).backward()`. `observe(out)` is kept
    as `FlopCount.observed`: where the work depends on the data (MoE routing), a caller corrects each later step by
    what it executed against what the counted pass did.

    Runs on a deep copy, so the caller's gradients, buffers (e.g. BatchNorm statistics) and RNG-free state are
    untouched and counting never perturbs training. Without `loss_fn` the count is of an inference, so the copy
    runs in eval mode (train-mode BatchNorm cannot run one sample whose feature maps shrink to 1x1).
    """
    model = copy.deepcopy(model)
    if loss_fn is None:
        model.eval()
    root_name = type(model).__name__
    with flop_counter() as fwd_mode:
        out = model(*inputs)
    forward = int(fwd_mode.get_total_flops())
    by_module = _module_totals(fwd_mode, root_name)
    backward = 0
    if loss_fn is not None:
        with flop_counter() as bwd_mode:
            loss_fn(out).backward()
        backward = int(bwd_mode.get_total_flops())
    return FlopCount(forward=forward, backward=backward, by_module_forward=by_module,
                     observed=observe(out) if observe is not None else None)


class FlopCache:
    """Caches `count_flops` per (tag, input shapes, dtypes); the model must not change shape under a tag.

    The count is of the first batch of a shape: work that depends on the data (MoE capacity drops, a random second
    expert) is corrected per step by the caller from `FlopCount.observed` (see experiments.tasks.moe)."""

    def __init__(self) -> None:
        self._cache: dict[tuple, FlopCount] = {}

    def get(
        self,
        tag: str,
        model: nn.Module,
        inputs: tuple[torch.Tensor, ...],
        loss_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        observe: Callable[[object], object] | None = None,
    ) -> FlopCount:
        key = (tag, tuple((tuple(x.shape), x.dtype) for x in inputs), loss_fn is not None, observe is not None)
        if key not in self._cache:
            self._cache[key] = count_flops(model, inputs, loss_fn, observe)
        return self._cache[key]


def param_counts(model: nn.Module) -> tuple[int, int]:
    """(total, nonzero) parameter counts; nonzero counts exact zeros as pruned."""
    total = sum(p.numel() for p in model.parameters())
    nonzero = sum(int(torch.count_nonzero(p.detach())) for p in model.parameters())
    return total, nonzero
