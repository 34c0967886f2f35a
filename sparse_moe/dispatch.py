"""Dispatch backends: numerically equivalent ways to compute y[t] = sum_i w_i * expert_{e_i}(x[t_i]).

Each backend: (x [T, d], token [N], expert [N], weight [N], experts, capacity) -> (y [T, d], rows executed).
Tokens with no assignment get y = 0 (the caller's residual carries them).

`auto` choice, from benchmarks/moe_dispatch.py (CPU, fp32, 1 thread, T=4096 d=256 f=1024, SwiGLU, fwd+bwd,
median over 25 shuffled rounds of the per-round ratio to the dense FFN of width k*f, PyTorch THP allocation on
as the leanlab CLI runs; shared 2-core VM: `auto` and the backend it resolves to, timed as separate arms,
differ by up to 8%, so read +-8% as noise):
    E=8  k=1/2: fused_ffn 1.02/0.94  sort_split 1.02/1.05  grouped_mm 1.00/1.07  (HF Mixtral block 1.03/1.12)
    E=16 k=1/2: fused_ffn 1.06/0.86  sort_split 1.13/0.88  grouped_mm 1.03/0.98  (HF Mixtral block 1.10/0.97)
    E=64 k=1/2: fused_ffn 1.53/1.10  sort_split 1.50/0.98  grouped_mm 1.49/0.92  (HF Mixtral block 1.58/1.03)
fused_ffn keeps each expert's intermediates in cache, which pays where experts get many rows (k=2, E<=16:
5-15% over sort_split here and in a stand-alone check); at E=64 (64 rows per expert) all per-expert-matmul
backends are equal within noise, bounded by streaming 200 MB of expert weights twice and writing 200 MB of
their gradients each step. CPU -> fused_ffn (runs fp64 and any width). CUDA -> grouped_mm is NOT measured (no
GPU was available): one kernel instead of E launches; re-measure with `--device cuda`. grouped_mm falls back to
fused_ffn where unsupported (fp64, strides not 16-byte aligned).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from meter.registry import Registry

from .experts import Experts
from .grouped import grouped_ffn, grouped_linear

Backend = Callable[..., tuple[torch.Tensor, int]]
DISPATCHERS: Registry[Backend] = Registry("dispatch backend")
AUTO_BY_DEVICE = {"cpu": "fused_ffn", "cuda": "grouped_mm"}


def _combine(x: torch.Tensor, token: torch.Tensor, out: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    # in the experts' dtype (bf16 under autocast; x's otherwise); in place: no copy
    return torch.zeros_like(x, dtype=out.dtype).index_add_(0, token, out * weight.to(out.dtype)[:, None])


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype expert matmuls produce: the autocast dtype when autocast is on for x's device, else x's."""
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


@DISPATCHERS.register("loop")
def loop_dispatch(x, token, expert, weight, experts: Experts, capacity=None):
    """Reference: one masked gather per expert, the plainest correct code."""
    y = torch.zeros_like(x, dtype=_compute_dtype(x))
    for e in range(experts.num_experts):
        sel = (expert == e).nonzero().squeeze(1)
        if sel.numel() == 0:
            continue
        b1 = None if experts.b1 is None else experts.b1[e]
        b2 = None if experts.b2 is None else experts.b2[e]
        out = experts.expert_forward(x[token[sel]], experts.w1[e], experts.w2[e], b1, b2)
        y = y.index_add(0, token[sel], out * weight[sel].to(out.dtype)[:, None])
    return y, int(token.numel())


def _sorted(token, expert, weight, num_experts):
    order = torch.argsort(expert, stable=True)
    counts = torch.bincount(expert, minlength=num_experts)
    return token[order], expert[order], weight[order], counts


@DISPATCHERS.register("sort_split")
def sort_split_dispatch(x, token, expert, weight, experts: Experts, capacity=None):
    """Sort rows by expert, per-expert matmuls on contiguous slices (`grouped_linear`), one index_add back.

    Never indexes W[e] under autograd: that copies all of W per expert in backward (see `loop`, 37x dense at
    E = 64); `grouped_linear` writes each expert's weight gradient in place instead.
    """
    tok, _, w, counts = _sorted(token, expert, weight, experts.num_experts)
    sizes = counts.tolist()
    h = grouped_linear(x.index_select(0, tok), experts.w1, sizes)
    if experts.b1 is not None:
        h = _add_segment_bias(h, experts.b1, sizes)
    out = grouped_linear(experts.act(h), experts.w2, sizes)
    if experts.b2 is not None:
        out = _add_segment_bias(out, experts.b2, sizes)
    return _combine(x, tok, out, w), int(tok.numel())


@DISPATCHERS.register("fused_ffn")
def fused_ffn_dispatch(x, token, expert, weight, experts: Experts, capacity=None):
    """Rows sorted by expert as in `sort_split`, but each expert's whole FFN (matmul, activation, matmul, and
    their backward) runs on its slice in one pass (`grouped_ffn`): intermediates stay in cache."""
    tok, _, w, counts = _sorted(token, expert, weight, experts.num_experts)
    out = grouped_ffn(x.index_select(0, tok), experts, counts.tolist())
    return _combine(x, tok, out, w), int(tok.numel())


def _add_segment_bias(h: torch.Tensor, bias: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    # Per-segment broadcast add: its backward reduces each expert's rows like the other backends do
    # (a gather `bias[ex]` would accumulate in a different order, ~1e-6 apart in fp32).
    return torch.cat([hs + b for hs, b in zip(h.split(sizes), bias.unbind(0))])


def grouped_mm_supported(x: torch.Tensor, experts: Experts) -> bool:
    if not hasattr(F, "grouped_mm") or x.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        return False
    align = 16 // x.element_size()  # row strides must be multiples of 16 bytes
    return all(n % align == 0 for n in (experts.d_model, experts.d_in, experts.d_ff))


@DISPATCHERS.register("grouped_mm")
def grouped_mm_dispatch(x, token, expert, weight, experts: Experts, capacity=None):
    """Sorted rows through torch.nn.functional.grouped_mm with offsets (fp32/bf16/fp16 only)."""
    if not grouped_mm_supported(x, experts):
        raise ValueError(
            f"dispatch 'grouped_mm' needs torch.nn.functional.grouped_mm, dtype fp32/bf16/fp16 (got {x.dtype}) "
            f"and d_model, d_ff multiples of {16 // x.element_size()} (got {experts.d_model}, {experts.d_ff})"
        )
    tok, ex, w, counts = _sorted(token, expert, weight, experts.num_experts)
    if tok.numel() == 0:
        return torch.zeros_like(x), 0
    offs = torch.cumsum(counts, 0).to(torch.int32)
    sizes = counts.tolist() if experts.b1 is not None else None
    dt = _compute_dtype(x)  # grouped_mm is not an autocast op: cast to autocast's dtype here (a no-op without)
    h = F.grouped_mm(x.index_select(0, tok).to(dt), experts.w1.to(dt), offs=offs)
    if experts.b1 is not None:
        h = _add_segment_bias(h, experts.b1, sizes)
    out = F.grouped_mm(experts.act(h).to(dt), experts.w2.to(dt), offs=offs)
    if experts.b2 is not None:
        out = _add_segment_bias(out, experts.b2, sizes)
    return _combine(x, tok, out, w), int(tok.numel())


@DISPATCHERS.register("padded_bmm")
def padded_bmm_dispatch(x, token, expert, weight, experts: Experts, capacity=None):
    """Rows scattered into a [E, C, d] buffer (C = capacity, or the max load when dropless), two bmm's.

    Static shapes when capacity is set; executes E * C rows, padding included.
    """
    num_e = experts.num_experts
    tok, ex, w, counts = _sorted(token, expert, weight, num_e)
    cap = capacity if capacity is not None else int(counts.max()) if tok.numel() else 0
    pos = torch.arange(tok.numel(), device=x.device) - (torch.cumsum(counts, 0) - counts)[ex]
    buf = x.new_zeros(num_e, cap, x.shape[1]).index_put((ex, pos), x.index_select(0, tok))
    h = torch.bmm(buf, experts.w1)
    if experts.b1 is not None:
        h = h + experts.b1[:, None, :]
    out = torch.bmm(experts.act(h), experts.w2)
    if experts.b2 is not None:
        out = out + experts.b2[:, None, :]
    return _combine(x, tok, out[ex, pos], w), num_e * cap


def resolve_dispatch(name: str, x: torch.Tensor, experts: Experts) -> Backend:
    """The backend for `name`; `auto` picks per device (AUTO_BY_DEVICE) with a supported fallback."""
    if name != "auto":
        return DISPATCHERS.get(name)
    choice = AUTO_BY_DEVICE.get(x.device.type, "fused_ffn")
    if choice == "grouped_mm" and not grouped_mm_supported(x, experts):
        choice = "fused_ffn"
    return DISPATCHERS.get(choice)
