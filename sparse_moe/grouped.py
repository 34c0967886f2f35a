"""Per-expert kernels for rows sorted by expert, with their own backward: `grouped_linear` (one matmul per
expert, the `sort_split` backend) and `grouped_ffn` (each expert's whole FFN in one pass, `fused_ffn`).

out[rows of e] = x[rows of e] @ w[e]. Forward and backward write every per-expert product straight into
preallocated outputs (`torch.mm(..., out=...)`): no `cat` of outputs, and no `unbind` -> `stack` copy of
the [E, K, M] weight gradient, which on CPU at E = 64 cost about a fifth of the layer's fwd+bwd time.
The per-expert products are the same `mm` calls autograd would make, so results match plain code bit for bit.
"""

from __future__ import annotations

import contextlib

import torch


class _GroupedLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        ctx.sizes = sizes
        out = x.new_empty(x.shape[0], w.shape[2])
        start = 0
        for e, n in enumerate(sizes):
            if n:
                torch.mm(x[start : start + n], w[e], out=out[start : start + n])
            start += n
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, w = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.empty_like(x)
        if ctx.needs_input_grad[1]:
            grad_w = torch.empty_like(w)
        start = 0
        for e, n in enumerate(ctx.sizes):
            rows = slice(start, start + n)
            if grad_x is not None and n:
                torch.mm(grad_out[rows], w[e].t(), out=grad_x[rows])
            if grad_w is not None:
                if n:
                    torch.mm(x[rows].t(), grad_out[rows], out=grad_w[e])
                else:
                    grad_w[e].zero_()
            start += n
        return grad_x, grad_w, None


def _autocast(x: torch.Tensor, *tensors):
    """Under autocast (bf16/fp16), x and the weights cast to its dtype outside the Function (so the casts are
    differentiable) and the hand-written Function run with autocast off; otherwise everything as it is."""
    device = x.device.type
    if not torch.is_autocast_enabled(device):
        return contextlib.nullcontext(), (x, *tensors)
    dtype = torch.get_autocast_dtype(device)
    cast = tuple(t.to(dtype) if isinstance(t, torch.Tensor) else t for t in (x, *tensors))
    return torch.autocast(device, enabled=False), cast


def grouped_linear(x: torch.Tensor, w: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """x [N, K] sorted by group, w [G, K, M], sizes: rows per group (sum N) -> [N, M]."""
    if sum(sizes) != x.shape[0] or len(sizes) != w.shape[0]:
        raise ValueError(f"grouped_linear: sizes (sum {sum(sizes)}, {len(sizes)} groups) do not fit x {tuple(x.shape)}, w {tuple(w.shape)}")
    context, (x, w) = _autocast(x, w)
    with context:
        return _GroupedLinear.apply(x.contiguous(), w, sizes)


class _GroupedFFN(torch.autograd.Function):
    """Each expert's whole FFN on its own rows, one expert at a time, forward and backward.

    The [rows, f] intermediates of one expert stay in cache, where stage-by-stage code (`grouped_linear`,
    activation, `grouped_linear`) streams one [N, f] tensor per stage through memory. Only x and the
    pre-activation h are saved; the activation is recomputed per expert in backward (elementwise, no FLOPs
    FlopCounterMode counts). Measured CPU fwd+bwd, 1 thread, d=256 f=1024 SwiGLU vs the stage-by-stage chain:
    E=8 N=8192 657 vs 778 ms, E=16 N=4096 346 vs 379 ms, E=64 N=4096 443 vs 450 ms.
    """

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2, activation, sizes):
        h = x.new_empty(x.shape[0], w1.shape[2])
        out = x.new_empty(x.shape[0], w2.shape[2])
        start = 0
        for e, n in enumerate(sizes):
            if n:
                rows = slice(start, start + n)
                h_e = torch.mm(x[rows], w1[e], out=h[rows])
                if b1 is not None:
                    h_e += b1[e]
                out_e = torch.mm(activation.fn(h_e), w2[e], out=out[rows])
                if b2 is not None:
                    out_e += b2[e]
            start += n
        ctx.save_for_backward(x, w1, b1, w2, b2, h)
        ctx.activation, ctx.sizes = activation, sizes
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, w1, b1, w2, b2, h = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        gx, gw1, gw2 = torch.empty_like(x), torch.empty_like(w1), torch.empty_like(w2)
        gb1 = None if b1 is None else torch.empty_like(b1)
        gb2 = None if b2 is None else torch.empty_like(b2)
        start = 0
        for e, n in enumerate(ctx.sizes):
            rows = slice(start, start + n)
            start += n
            if n == 0:  # an expert that got no rows: zero gradient, as autograd would accumulate
                for g in (gw1, gw2, gb1, gb2):
                    if g is not None:
                        g[e].zero_()
                continue
            go = grad_out[rows]
            torch.mm(ctx.activation.fn(h[rows]).t(), go, out=gw2[e])
            gh = ctx.activation.backward(h[rows], go @ w2[e].t())
            torch.mm(gh, w1[e].t(), out=gx[rows])
            torch.mm(x[rows].t(), gh, out=gw1[e])
            if b1 is not None:
                torch.sum(gh, 0, out=gb1[e])
            if b2 is not None:
                torch.sum(go, 0, out=gb2[e])
        return gx, gw1, gb1, gw2, gb2, None, None


def grouped_ffn(x: torch.Tensor, experts, sizes: list[int]) -> torch.Tensor:
    """x [N, d] sorted by expert, sizes: rows per expert (sum N) -> experts' FFN outputs [N, d] (same order)."""
    if sum(sizes) != x.shape[0] or len(sizes) != experts.num_experts:
        raise ValueError(f"grouped_ffn: sizes (sum {sum(sizes)}, {len(sizes)} groups) do not fit x {tuple(x.shape)} "
                         f"and {experts.num_experts} experts")
    context, (x, w1, b1, w2, b2) = _autocast(x, experts.w1, experts.b1, experts.w2, experts.b2)
    with context:
        return _GroupedFFN.apply(x.contiguous(), w1, b1, w2, b2, experts.activation, sizes)
