"""`meter.flops.count_flops` counts grouped (depthwise) convolution backward exactly: torch's own formula counts its
grad_input as if the conv were dense (x groups)."""

import torch

from meter.flops import count_flops


def test_depthwise_backward_costs_twice_the_forward():
    conv = torch.nn.Conv1d(16, 16, 3, padding=1, groups=16, bias=False)
    x = torch.randn(2, 16, 10, requires_grad=True)
    c = count_flops(conv, (x,), lambda out: out.sum())
    forward = 2 * 2 * 16 * 3 * 10  # batch x channels x kernel x length multiply-adds, 2 FLOPs each
    assert c.forward == forward
    assert c.backward == 2 * forward  # grad_input and grad_weight, each the forward's multiply-adds


def test_dense_conv_backward_unchanged():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    x = torch.randn(1, 3, 5, 5, requires_grad=True)
    c = count_flops(conv, (x,), lambda out: out.sum())
    assert c.forward == 2 * 8 * 3 * 9 * 25
    assert c.backward == 2 * c.forward
