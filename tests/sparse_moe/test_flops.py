"""Analytic FLOPs equal FlopCounterMode: exactly on the loop backend, and on the others once grouped_mm is
registered (padded_bmm counts its padding as executed)."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from meter.flops import count_flops
from sparse_moe import MoELayer, layer_flops, training_flops
from sparse_moe.models import CharTransformerConfig, MoEConfig, build_model


def _count(layer, x, g):
    with FlopCounterMode(display=False) as fwd:
        y, aux = layer(x)
    with FlopCounterMode(display=False) as bwd:
        (y * g).sum().backward()
    return fwd.get_total_flops(), bwd.get_total_flops(), aux


@pytest.mark.parametrize(
    "router,k,cf,shared",
    [("switch", 1, 1.0, 0), ("mixtral", 2, None, 1), ("gshard", 2, 0.5, 0), ("expert_choice", 2, None, 0), ("hash", 1, None, 0)],
)
@pytest.mark.parametrize("backend", ["loop", "sort_split", "fused_ffn", "grouped_mm", "padded_bmm"])
def test_analytic_equals_flop_counter(router, k, cf, shared, backend):
    torch.manual_seed(0)
    layer = MoELayer(16, 32, 4, router=router, top_k=k, capacity_factor=cf, num_shared_experts=shared, dispatch=backend)
    x = torch.randn(2, 24, 16, requires_grad=True)
    fwd, bwd, aux = _count(layer, x, torch.randn(2, 24, 16))
    fl = layer_flops(layer, aux)
    assert fwd == fl.matmul_forward
    assert bwd == 2 * fwd
    assert fwd + bwd == training_flops(layer, aux)
    kept = int(aux.tokens_per_expert.sum())
    assert fl.experts_useful == kept * (2 * 16 * 32 * 2)
    if backend == "padded_bmm":
        cap = aux.capacity if aux.capacity is not None else int(aux.tokens_per_expert.max())
        assert fl.experts_executed == 4 * cap * (2 * 16 * 32 * 2)
    else:
        assert fl.experts_executed == fl.experts_useful
    assert fl.router == (0 if router == "hash" else 2 * 48 * 16 * 4)


def test_padded_bmm_executes_full_capacity():
    torch.manual_seed(0)
    layer = MoELayer(16, 32, 4, capacity_factor=2.0, dispatch="padded_bmm")
    _, aux = layer(torch.randn(40, 16))
    fl = layer_flops(layer, aux)
    assert aux.rows_executed == 4 * 20
    assert fl.experts_executed == 80 * 2 * 16 * 32 * 2 > fl.experts_useful


def test_model_level_count_matches_meter():
    torch.manual_seed(0)
    cfg = CharTransformerConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, d_model=16, d_ff=32,
                                moe=MoEConfig(num_experts=4, dispatch="loop"))
    model = build_model("char_transformer", cfg)
    ids = torch.randint(0, 20, (2, 16))
    counted = count_flops(model, (ids,), loss_fn=lambda out: out[0].sum())
    _, auxes = model(ids)
    moe_counted = sum(counted.by_module_forward[f"blocks.{i}.ffn.inner"] for i in range(2))
    layers = [model.blocks[i].ffn.inner for i in range(2)]
    assert moe_counted == sum(layer_flops(m, a).matmul_forward for m, a in zip(layers, auxes))


def test_flops_stats_keys_and_values():
    torch.manual_seed(0)
    layer = MoELayer(16, 32, 4, capacity_factor=2.0, dispatch="padded_bmm")
    _, aux = layer(torch.randn(40, 16))
    from sparse_moe import flops_stats

    st = flops_stats([layer], [aux])
    row = 2 * 16 * 32 * 2
    assert st["moe/layer0/flops_executed"] == 2 * 40 * 16 * 4 + 80 * row
    assert st["moe/layer0/flops_useful"] == 2 * 40 * 16 * 4 + 40 * row
    assert st["moe/layer0/flops_dense"] == 2 * 40 * 16 * 4 + 4 * 40 * row
