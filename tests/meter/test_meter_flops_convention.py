"""One FLOP convention: `Meter.window(flops=True)`, `@metered(flops=True)` and `count_flops` use one counter, and
every scaled_dot_product_attention backend reachable on CPU counts the math formula (2*B*H*L*S*E for q @ k^T, the
same for the weights @ v; backward 2x forward). Causal attention counts the full L x S scores (torch's convention)."""

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from meter import Meter, metered
from meter.flops import count_flops, flop_counter

C, K, N = 16, 3, 10  # depthwise Conv1d: channels, kernel, length (padding keeps the length)
DW_FORWARD = 2 * 2 * C * K * N  # batch 2 x channels x kernel x length multiply-adds, 2 FLOPs each


def _depthwise():
    torch.manual_seed(0)
    return torch.nn.Conv1d(C, C, K, padding=1, groups=C, bias=False), torch.randn(2, C, N, requires_grad=True)


def test_window_and_decorator_count_a_depthwise_conv_as_count_flops_does():
    conv, x = _depthwise()
    by_count = count_flops(conv, (x,), lambda out: out.sum()).total
    with Meter(enabled=False) as m, m.window("step", flops=True) as w:
        conv(x).sum().backward()

    @metered(flops=True, enabled=False)
    def step():
        conv(x).sum().backward()

    step()
    # forward, then grad_input and grad_weight each cost the forward's multiply-adds (torch alone: 22x higher)
    assert by_count == w.flops == step.result.flops == 3 * DW_FORWARD


def _attention(b=2, h=3, lq=5, s=7, e=4, ev=4):  # flash needs ev == e
    torch.manual_seed(0)
    q = torch.randn(b, h, lq, e, requires_grad=True)
    k, v = torch.randn(b, h, s, e, requires_grad=True), torch.randn(b, h, s, ev, requires_grad=True)
    return (q, k, v), 2 * b * h * lq * s * e + 2 * b * h * lq * s * ev  # q @ k^T, then weights @ v


CPU_BACKENDS = [None, SDPBackend.MATH, SDPBackend.FLASH_ATTENTION]  # None: torch's own choice


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.name if b else "default")
@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("causal", [False, True])
def test_every_cpu_sdpa_backend_counts_the_math_formula(backend, dropout, causal):
    (q, k, v), forward = _attention()
    if backend == SDPBackend.FLASH_ATTENTION and dropout > 0:  # the CPU fused kernel has no dropout: unreachable
        with sdpa_kernel([backend]), pytest.raises(RuntimeError, match="No available kernel"):
            F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=causal)
        return
    with sdpa_kernel([backend]) if backend else contextlib.nullcontext():
        with flop_counter() as fwd:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=causal)
        with flop_counter() as bwd:
            out.sum().backward()
    assert fwd.get_total_flops() == forward
    assert bwd.get_total_flops() == 2 * forward


@pytest.mark.parametrize("backend", [SDPBackend.MATH, SDPBackend.FLASH_ATTENTION], ids=lambda b: b.name)
def test_grouped_query_attention_counts_the_query_heads(backend):
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 5, 8), torch.randn(2, 2, 7, 8), torch.randn(2, 2, 7, 8)
    with sdpa_kernel([backend]), flop_counter() as fwd:
        F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    assert fwd.get_total_flops() == 2 * (2 * 2 * 4 * 5 * 7 * 8)


def test_math_backend_with_a_wider_value():
    (q, k, _), _ = _attention()
    v = torch.randn(2, 3, 7, 6)
    with sdpa_kernel([SDPBackend.MATH]), flop_counter() as fwd:
        F.scaled_dot_product_attention(q, k, v)
    assert fwd.get_total_flops() == 2 * 2 * 3 * 5 * 7 * 4 + 2 * 2 * 3 * 5 * 7 * 6


def test_the_cpu_fused_kernel_is_the_one_counted():
    """Guard: without dropout the default CPU path is the fused kernel torch's registry lacks (it counted 0)."""
    (q, k, v), forward = _attention()
    ops = torch.ops.aten
    with flop_counter() as mode:
        F.scaled_dot_product_attention(q, k, v)
    assert mode.get_flop_counts()["Global"] == {ops._scaled_dot_product_flash_attention_for_cpu: forward}
