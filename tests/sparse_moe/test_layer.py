"""Exact maths of the MoE layer: dense equivalence, capacity, golden loss values, masking, routers."""

import copy
import math

import pytest
import torch

from sparse_moe import DISPATCHERS, DenseFFN, MoEConfig, MoELayer, step_routers, total_aux_loss
from sparse_moe.capacity import expert_capacity
from sparse_moe.losses import balance_loss, z_loss


@pytest.mark.parametrize("backend", DISPATCHERS.names())
@pytest.mark.parametrize("activation", ["gelu", "swiglu"])
def test_single_expert_equals_dense_exactly(backend, activation):
    torch.manual_seed(0)
    dense = DenseFFN(16, 32, activation)
    moe = MoELayer(16, 32, 1, router="switch", top_k=1, dispatch=backend, activation=activation)
    with torch.no_grad():
        moe.experts.w1.copy_(dense.w1[None])
        moe.experts.w2.copy_(dense.w2[None])
    x = torch.randn(4, 10, 16)
    g = torch.randn(4, 10, 16)
    y_d = dense(x)
    y_m, aux = moe(x)
    assert torch.equal(y_d, y_m)
    (y_d * g).sum().backward()
    (y_m * g).sum().backward()
    assert torch.equal(dense.w1.grad, moe.experts.w1.grad[0])
    assert torch.equal(dense.w2.grad, moe.experts.w2.grad[0])
    assert aux.balance_loss.item() == 1.0 and aux.drop_fraction.item() == 0.0


@pytest.mark.parametrize("router,k", [("switch", 1), ("mixtral", 2), ("gshard", 2), ("deepseek_v3", 3)])
def test_capacity_at_least_e_over_k_equals_dropless(router, k):
    torch.manual_seed(0)
    e = 6
    dropless = MoELayer(8, 16, e, router=router, top_k=k, capacity_factor=None, dispatch="sort_split")
    capped = copy.deepcopy(dropless)
    capped.cfg.capacity_factor = e / k
    x = torch.randn(50, 8)
    y0, a0 = dropless(x)
    y1, a1 = capped(x)
    assert a1.capacity == 50 and a1.dropped.item() == 0
    assert torch.equal(y0, y1)
    assert torch.equal(a0.tokens_per_expert, a1.tokens_per_expert)


def test_capacity_formula():
    assert expert_capacity(None, 1, 100, 8) is None
    assert expert_capacity(0.0, 2, 100, 8) is None
    assert expert_capacity(1.0, 1, 100, 8) == 13  # ceil(12.5)
    assert expert_capacity(1.25, 2, 64, 16) == 10
    assert expert_capacity(4.0, 2, 37, 8) == 37  # cf = E/k -> C = T


def _crafted_layer(e, k, cf):
    layer = MoELayer(e, 8, e, router="mixtral", top_k=k, capacity_factor=cf, dispatch="loop")
    with torch.no_grad():
        layer.router.weight.copy_(torch.eye(e))  # logits = x
    return layer


def test_crafted_top2_drop_count_and_priority():
    # Top-2 choices by construction: t0 (0,1), t1 (0,2), t2 (1,0), t3 (3,0); C = ceil(0.5*2*4/4) = 1.
    # First choices: e0 gets t0 (t1 dropped), e1 gets t2, e3 gets t3. Second choices: t0->e1 full (dropped
    # even though t0 precedes t2: first choices win), t1->e2 kept, t2->e0 full, t3->e0 full. Dropped: 4 of 8.
    x = torch.tensor([[3.0, 2, 0, -1], [3, -1, 2, 0], [2, 3, 0, -1], [2, -1, 0, 3]])
    layer = _crafted_layer(4, 2, 0.5)
    _, aux = layer(x)
    assert aux.capacity == 1
    assert aux.dropped.item() == 4
    assert aux.drop_fraction.item() == 0.5
    assert aux.requested_per_expert.tolist() == [4, 2, 1, 1]
    assert aux.tokens_per_expert.tolist() == [1, 1, 1, 1]


def test_crafted_top1_drop_count_and_residual():
    # Five tokens prefer expert 0, one prefers expert 1; C = ceil(1.0 * 6 / 2) = 3 -> two drops (t3, t4).
    x = torch.tensor([[2.0, 0], [3, 0], [1, 0], [4, 0], [5, 0], [0, 1]])
    layer = MoELayer(2, 8, 2, router="switch", capacity_factor=1.0, dispatch="sort_split")
    with torch.no_grad():
        layer.router.weight.copy_(torch.eye(2))
    y, aux = layer(x)
    assert aux.dropped.item() == 2
    assert aux.tokens_per_expert.tolist() == [3, 1]
    assert torch.equal(y[3:5], torch.zeros(2, 2))  # dropped tokens: zero FFN output, the residual carries them
    assert (y[:3].abs().sum(-1) > 0).all()


def test_balance_loss_uniform_is_one():
    for e, k in [(4, 1), (8, 2), (16, 1), (5, 3)]:
        t = 10 * e
        probs = torch.full((t, e), 1.0 / e)
        expert = (torch.arange(t * k) % e).view(t, k)
        assert balance_loss(probs, expert, None).item() == pytest.approx(1.0, abs=1e-6)
    # HF Mixtral normalisation = k * ours (see sparse_moe.losses), checked on a non-uniform case.
    torch.manual_seed(0)
    probs = torch.randn(12, 4).softmax(-1)
    expert = probs.topk(2, -1).indices
    hf = (torch.nn.functional.one_hot(expert, 4).float().mean(0) * probs.mean(0)).sum() * 4
    assert hf.item() == pytest.approx(2 * balance_loss(probs, expert, None).item(), rel=1e-6)


def test_balance_loss_collapsed_is_e():
    probs = torch.zeros(8, 4)
    probs[:, 0] = 1
    assert balance_loss(probs, torch.zeros(8, 1, dtype=torch.long), None).item() == 4.0


def test_z_loss_value():
    logits = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    expected = (math.log(2) ** 2 + math.log(math.e + math.e**2) ** 2) / 2
    assert z_loss(logits, None).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("cf,expect", [(1.0, 4), (2.0, 8), (None, 8)])
def test_expert_choice_exact_capacity(cf, expect):
    torch.manual_seed(0)
    layer = MoELayer(8, 16, 4, router="expert_choice", top_k=2, capacity_factor=cf)
    _, aux = layer(torch.randn(16, 8))
    assert aux.tokens_per_expert.tolist() == [expect] * 4
    assert aux.dropped.item() == 0
    assert aux.balance_loss.item() == pytest.approx(1.0, abs=1e-6)


def test_expert_choice_never_picks_padding():
    torch.manual_seed(0)
    layer = MoELayer(8, 16, 4, router="expert_choice", top_k=1, capacity_factor=1.0)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[:, :5] = True
    y, aux = layer(torch.randn(2, 8, 8), mask=mask)
    assert aux.tokens_per_expert.tolist() == [3, 3, 3, 3]  # ceil(1 * 10 / 4)
    assert torch.equal(y[~mask], torch.zeros(6, 8))


@pytest.mark.parametrize("router,k", [("switch", 1), ("mixtral", 2), ("deepseek_v3", 2)])
def test_padding_mask_is_invisible(router, k):
    torch.manual_seed(0)
    layer = MoELayer(8, 16, 4, router=router, top_k=k).eval()
    x = torch.randn(2, 6, 8)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    y, aux = layer(x, mask=mask)
    y_ref, aux_ref = layer(x[mask])
    assert torch.allclose(y[mask], y_ref, atol=1e-6)
    assert torch.equal(y[~mask], torch.zeros(5, 8))
    assert aux.balance_loss.item() == pytest.approx(aux_ref.balance_loss.item(), rel=1e-6)
    assert aux.z_loss.item() == pytest.approx(aux_ref.z_loss.item(), rel=1e-6)
    assert aux.num_valid_tokens == 7 and aux.tokens_per_expert.sum().item() == 7 * k


def test_eval_capacity_factor_applies_in_eval():
    layer = MoELayer(8, 16, 4, capacity_factor=0.5, eval_capacity_factor=None)
    x = torch.randn(32, 8)
    assert layer.train()(x)[1].capacity == 4
    assert layer.eval()(x)[1].capacity is None


def test_gshard_policies():
    torch.manual_seed(0)
    x = torch.randn(400, 8)
    for policy in ("all", "random", "sampling"):
        layer = MoELayer(8, 16, 4, router="gshard", top_k=2, second_expert_policy=policy).train()
        with torch.no_grad():
            layer.router.weight.normal_()
        _, aux = layer(x)
        n = aux.tokens_per_expert.sum().item()
        if policy == "random":
            assert 400 <= n < 800  # some second choices skipped
        else:
            assert n == 800
        assert layer.eval()(x)[1].tokens_per_expert.sum().item() == 800  # eval: always 'all'


def test_deepseek_bias_moves_toward_balance():
    torch.manual_seed(0)
    layer = MoELayer(8, 16, 4, router="deepseek_v3", top_k=1, bias_update_rate=0.01)
    x = torch.randn(512, 8)
    x[:, 0] = x[:, 0].abs()
    with torch.no_grad():
        layer.router.weight.normal_()
        layer.router.weight[:, 0] = 0
        layer.router.weight[0, 0] = 3.0  # expert 0 scores high on every token: skewed load
    first = layer(x)[1].tokens_per_expert
    step_routers(layer)
    bias = layer.router.score_bias
    assert bias[0] == -0.01 and bias[1] == 0.01  # b_e += u * sign(mean load - load_e)
    assert layer.router.load.sum() == 0
    for _ in range(40):
        layer(x)
        step_routers(layer)
    last = layer(x)[1].tokens_per_expert
    assert first.max() > 1.5 * 128  # 128 = balanced load
    assert last.max() - 128 < 0.5 * (first.max() - 128)  # excess load at least halved (wrong sign grows it)


def test_hash_router_uses_token_ids():
    layer = MoELayer(8, 16, 4, router="hash")
    ids = torch.tensor([[5, 5, 7, 5]])
    _, aux = layer(torch.randn(1, 4, 8), token_ids=ids)
    assert sorted(aux.tokens_per_expert.tolist()) in ([0, 0, 1, 3], [0, 0, 0, 4])


def test_shared_expert_and_weighted_loss():
    torch.manual_seed(0)
    layer = MoELayer(8, 16, 4, num_shared_experts=1, balance_coef=0.5, z_coef=0.25)
    y, aux = layer(torch.randn(10, 8))
    assert torch.allclose(aux.weighted_loss, 0.5 * aux.balance_loss + 0.25 * aux.z_loss)
    assert torch.equal(total_aux_loss([aux, aux]), 2 * aux.weighted_loss)
    assert len(list(layer.shared.parameters())) == 2


def test_router_stays_fp32_under_autocast():
    layer = MoELayer(16, 32, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer.router.logits(torch.randn(8, 16))
    assert logits.dtype == torch.float32


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(top_k=0), "top_k"),
        (dict(router="nope"), "router 'nope' unknown; allowed: deepseek_v3, expert_choice"),
        (dict(router="gshard", top_k=1), "gshard"),
        (dict(capacity_factor=-1.0), "capacity_factor"),
        (dict(second_expert_policy="x"), "second_expert_policy"),
        (dict(activation="tanhh"), "activation"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MoEConfig(num_experts=4, **kwargs)


def test_bad_input_shapes():
    layer = MoELayer(8, 16, 4)
    with pytest.raises(ValueError, match="d_model=8"):
        layer(torch.randn(3, 7))
    with pytest.raises(ValueError, match="mask shape"):
        layer(torch.randn(3, 8), mask=torch.ones(4, dtype=torch.bool))


@pytest.mark.parametrize("activation", ["gelu", "relu", "silu", "swiglu"])
def test_layer_pickles_and_computes_the_same(activation):
    # torch.save(model) and spawned workers pickle modules; the activation registry must not hold lambdas.
    import pickle

    torch.manual_seed(0)
    layer = MoELayer(8, 16, 4, activation=activation, dispatch="fused_ffn")
    x = torch.randn(10, 8)
    assert torch.equal(pickle.loads(pickle.dumps(layer))(x)[0], layer(x)[0])
