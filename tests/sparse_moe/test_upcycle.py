"""moefy / sparse upcycling: the upcycled model is the dense model at step 0, gradients reach router and experts,
unconvertible modules are refused by name; routers carry their fixed top_k."""

import copy
import pickle

import pytest
import torch
from torch import nn

from sparse_moe import ROUTERS, MoEConfig, MoEFFN, aux_stats, collect_aux, moefy, total_aux_loss
from sparse_moe.models import CharTransformer, CharTransformerConfig

pytestmark = pytest.mark.usefixtures("one_thread")


class Mlp(nn.Module):
    """timm's Mlp layout: children in call order, Identity norm, output dropout."""

    def __init__(self, d: int, f: int, reverse: bool = False) -> None:
        super().__init__()
        self.fc1, self.act, self.drop1 = nn.Linear(d, f), nn.GELU(), nn.Dropout(0.0)
        self.norm, self.fc2, self.drop2 = nn.Identity(), nn.Linear(f, d), nn.Dropout(0.1)
        self.reverse = reverse

    def forward(self, x):
        if self.reverse:  # same children, another function: must be refused
            return self.fc2(torch.relu(self.fc1(x)))
        return self.drop2(self.fc2(self.norm(self.drop1(self.act(self.fc1(x))))))


class Block(nn.Module):
    def __init__(self, d: int, mlp: nn.Module) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.mlp = mlp

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


def tiny_transformer(kind: str, d: int = 16) -> nn.Module:
    mlp = {"sequential": lambda: nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(0.0)),
           "timm": lambda: Mlp(d, 4 * d)}[kind]
    return nn.Sequential(*(Block(d, mlp()) for _ in range(2))).double()


def char_transformer() -> nn.Module:
    cfg = CharTransformerConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, d_model=16, d_ff=32, ffn="dense")
    return CharTransformer(cfg).double()


# name -> (model factory, match, input).
CASES = {
    "char_transformer": (char_transformer, "blocks.*.ffn.inner", lambda: torch.randint(0, 11, (3, 8))),
    "sequential_mlp": (lambda: tiny_transformer("sequential"), "*.mlp", lambda: torch.randn(3, 5, 16).double()),
    "timm_mlp": (lambda: tiny_transformer("timm"), lambda n, m: isinstance(m, Mlp), lambda: torch.randn(3, 5, 16)
                 .double()),
}


def outputs(model, x):
    out = model(x)
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("num_experts", [1, 4])
def test_upcycled_top1_computes_the_dense_function_exactly(case, num_experts):
    factory, match, inputs = CASES[case]
    torch.manual_seed(0)
    dense = factory().eval()
    x = inputs()
    moe = moefy(copy.deepcopy(dense), match=match, num_experts=num_experts, top_k=1)
    assert sum(isinstance(m, MoEFFN) for m in moe.modules()) == 2
    assert not any(m.training for m in moe.modules())  # the new layers take the mode of the ones they replace
    # The same sums as the dense model; only the BLAS kernel differs (per-expert row blocks; nn.Linear's W^T layout
    # and fused bias), so fp64 agrees to rounding (4e-16 measured). Bit for bit where the kernels are the same: one
    # expert with DenseFFN's weight layout.
    torch.testing.assert_close(outputs(moe, x), outputs(dense, x), rtol=0, atol=1e-13)
    if case == "char_transformer" and num_experts == 1:
        assert torch.equal(outputs(moe, x), outputs(dense, x))
    auxes = collect_aux(moe)
    assert len(auxes) == 2 and collect_aux(moe) == []  # taken once
    if num_experts == 4:  # the random router really spreads tokens: the equality is not one expert's copy
        assert max(int((a.tokens_per_expert > 0).sum()) for a in auxes) > 1


def test_upcycled_top2_equals_dense_up_to_rounding():
    factory, match, inputs = CASES["sequential_mlp"]
    torch.manual_seed(1)
    dense = factory().eval()
    x = inputs()
    moe = moefy(copy.deepcopy(dense), match=match, num_experts=4, top_k=2).eval()
    assert moe[0].mlp.layer.cfg.router == "mixtral"
    torch.testing.assert_close(outputs(moe, x), outputs(dense, x), rtol=0, atol=1e-13)


def test_without_gate_norm_switch_scales_the_output_by_the_gate():
    """Why gate_norm matters: Switch's plain top-1 weight p < 1 multiplies the copied expert's output."""
    torch.manual_seed(2)
    ffn = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8)).double()
    model = nn.Sequential(copy.deepcopy(ffn))
    with pytest.warns(UserWarning, match="gate_norm='none' scales each output"):
        moefy(model, match="0", num_experts=4, gate_norm="none")
    x = torch.randn(6, 8).double()
    p = model[0].layer.router.logits(x).softmax(-1).max(-1).values
    torch.testing.assert_close(model(x), p[:, None] * ffn(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("gate_norm,router_learns_from_task", [("detached_sum", True), ("sum", False)])
def test_gradients_reach_router_and_experts(gate_norm, router_learns_from_task):
    factory, match, inputs = CASES["char_transformer"]
    torch.manual_seed(3)
    model = moefy(factory(), match=match, num_experts=4, top_k=1, gate_norm=gate_norm)
    ids = inputs()
    logits, _ = model(ids)
    task = nn.functional.cross_entropy(logits.flatten(0, 1), torch.roll(ids, -1, 1).flatten())
    task.backward(retain_graph=True)
    layers = [m.layer for m in model.modules() if isinstance(m, MoEFFN)]
    for layer in layers:
        assert layer.experts.w1.grad.abs().sum() > 0 and layer.experts.w2.grad.abs().sum() > 0
        task_grad = float(layer.router.weight.grad.abs().max())  # "sum": d(p/p)/dp = 0 up to rounding
        assert task_grad > 1e-6 if router_learns_from_task else task_grad < 1e-15
    model.zero_grad()
    total_aux_loss(collect_aux(model)).backward()  # balance + z losses always train the router
    assert all(layer.router.weight.grad.abs().sum() > 0 for layer in layers)


def test_moefied_model_deepcopies_and_pickles_with_a_pending_aux():
    factory, match, inputs = CASES["timm_mlp"]
    model = moefy(factory(), match=match, num_experts=2)
    model.train()(inputs()).sum()  # forward with graph, aux not collected
    clone = pickle.loads(pickle.dumps(copy.deepcopy(model)))
    assert collect_aux(clone) == [] and len(aux_stats(collect_aux(model))) == 2 * 8


def test_refuses_what_it_cannot_convert():
    model = tiny_transformer("sequential")
    with pytest.raises(ValueError, match=r"'0.attn' \(MultiheadAttention\(out_proj.*is not a dense FFN.*sequential: its parts do not fit"):
        moefy(model, match="*.attn")
    with pytest.raises(ValueError, match=r"matches no module.*0.mlp"):
        moefy(model, match="*.ffn")
    reordered = nn.Sequential(Block(16, Mlp(16, 64, reverse=True)))
    with pytest.raises(ValueError, match="'0.mlp'.*timm_mlp: its forward differs"):
        moefy(reordered, match="*.mlp")
    hidden_dropout = nn.Sequential(nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Dropout(0.5), nn.Linear(8, 4)))
    with pytest.raises(ValueError, match=r"'0' has hidden dropout p=0.5.*drop_hidden_dropout=True"):
        moefy(hidden_dropout, match="0")


@pytest.mark.parametrize("name", ROUTERS.names())
def test_routers_refuse_any_other_top_k_than_their_fixed_one(name):
    fixed = ROUTERS.get(name).fixed_top_k
    if fixed is None:
        assert MoEConfig(num_experts=4, router=name, top_k=3).top_k == 3
    else:
        MoEConfig(num_experts=4, router=name, top_k=fixed)
        with pytest.raises(ValueError, match=f"{name}' is top-{fixed}; got top_k={fixed % 2 + 1}"):
            MoEConfig(num_experts=4, router=name, top_k=fixed % 2 + 1)
