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


def test_an_inference_count_runs_in_eval_mode_and_leaves_the_model_as_it_was():
    """One sample through a net whose maps reach 1x1: train-mode BatchNorm raises, an inference count does not."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                              torch.nn.Linear(4, 2)).train()
    x = torch.randn(1, 3, 3, 3)  # -> [1, 4, 1, 1]
    count = count_flops(net, (x,))
    assert count.forward == 2 * (4 * 3 * 3 * 3) + 2 * 4 * 2 and count.backward == 0  # conv + linear MACs x 2
    assert net.training and int(net[1].num_batches_tracked) == 0
