"""`flops/train_total_effective`: the dense training FLOPs with each masked layer's forward + backward share
scaled by its density, counted by hand on a small MLP."""

from __future__ import annotations

import torch
from torch import nn

from experiments.tasks.lth_flops import effective_train_flops, step_flops_by_module


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))


def test_one_step_by_module_counted_by_hand():
    total, by_module = step_flops_by_module(_mlp(), torch.randn(3, 8))
    # layer 0: forward 2*3*8*4 = 192, backward only the weight gradient (the input needs none) = 192
    # layer 2: forward 2*3*4*2 = 48, backward input gradient 48 + weight gradient 48
    assert by_module["0"] == 384 and by_module["2"] == 144 and total == 528


def test_effective_scales_each_masked_layer_by_its_density():
    model = _mlp()
    full = {"0.weight": torch.ones(4, 8, dtype=torch.bool), "2.weight": torch.ones(2, 4, dtype=torch.bool)}
    assert effective_train_flops(model, full, torch.randn(3, 8), 5280) == 5280  # a dense mask: the dense count
    half = {**full, "0.weight": torch.arange(32).reshape(4, 8) % 2 == 0}  # layer 0 at density 0.5
    quarter = {"0.weight": half["0.weight"], "2.weight": torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)}
    assert effective_train_flops(model, half, torch.randn(3, 8), 5280) == 5280 * (528 - 192) // 528
    assert effective_train_flops(model, quarter, torch.randn(3, 8), 5280) == round(5280 * (528 - 192 - 144 * 7 / 8) / 528)
    # the ratio does not depend on the batch the step is counted on
    assert effective_train_flops(model, half, torch.randn(17, 8), 5280) == 5280 * (528 - 192) // 528
