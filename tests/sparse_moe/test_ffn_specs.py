"""moefy on the FFNs of real model families (transformers, timm, torch): one case per FFN spec, built tiny from
configs (no download), fp64. Each upcycled model equals its dense model at step 0 (dropless top-2), gradients reach
every router, and save_moefied -> load_moefied gives the same outputs. Plus: every=2 placement, the step-0
drop warnings (issue 19), unknown FFNs, a user spec, hidden dropout, activations identified by value."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparse_moe import (
    FFN_SPECS,
    FFNSpec,
    MoEFFN,
    collect_aux,
    load_moefied,
    moefy,
    save_moefied,
    total_aux_loss,
)
from sparse_moe.dense_spec import identify_activation
from sparse_moe.ffn_specs import candidates

pytestmark = pytest.mark.usefixtures("one_thread")
V, D, F_ = 50, 32, 64  # vocab, width, FFN width


@dataclass
class Case:
    spec: str  # the FFN spec its FFNs must resolve to
    build: Callable[[], nn.Module]
    inputs: Callable[[], dict]
    ffn: Callable[[nn.Module], nn.Module]  # one dense FFN module of the model
    n_ffn: int  # FFNs moefy finds with match=None
    hf: bool = False


def _hf(name: str):
    return getattr(pytest.importorskip("transformers"), name)


def _ids(**extra):
    return lambda: {"input_ids": torch.randint(0, V, (2, 7)), **{k: f() for k, f in extra.items()}}


def _llama():
    cfg = _hf("LlamaConfig")(vocab_size=V, hidden_size=D, intermediate_size=F_, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
    return _hf("LlamaForCausalLM")(cfg)


def _gpt2():
    cfg = _hf("GPT2Config")(vocab_size=V, n_embd=D, n_inner=F_, n_layer=2, n_head=4, n_positions=32, resid_pdrop=0.0,
                            embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    return _hf("GPT2LMHeadModel")(cfg)


def _t5(gated: bool):
    cfg = _hf("T5Config")(vocab_size=V, d_model=D, d_kv=8, d_ff=F_, num_layers=2, num_heads=4, dropout_rate=0.0,
                          feed_forward_proj="gated-gelu" if gated else "relu")
    return _hf("T5Model")(cfg)


def _bert():
    cfg = _hf("BertConfig")(vocab_size=V, hidden_size=D, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=F_, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return _hf("BertModel")(cfg)


def _vit():
    cfg = _hf("ViTConfig")(image_size=8, patch_size=4, hidden_size=D, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=F_)
    return _hf("ViTModel")(cfg)


def _timm_vit(**kw):
    timm = pytest.importorskip("timm")
    layers = pytest.importorskip("timm.layers")
    kw = {k: getattr(layers, v) if k == "mlp_layer" else v for k, v in kw.items()}
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=16, patch_size=8, embed_dim=D, depth=2,
                             num_heads=2, num_classes=5, **kw)


def _glu_gate_first():
    layers = pytest.importorskip("timm.layers")
    return nn.Sequential(layers.GluMlp(D, 2 * F_, act_layer=nn.SiLU, gate_last=False), nn.LayerNorm(D))


def _torch_encoder():
    layer = nn.TransformerEncoderLayer(D, 4, F_, dropout=0.0, batch_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


class _Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.TransformerDecoderLayer(D, 4, F_, dropout=0.0, activation="gelu", batch_first=True)

    def forward(self, tgt, memory):
        return self.layer(tgt, memory)


def _pixels():
    return {"pixel_values": torch.randn(2, 3, 8, 8)}


def _image():
    return {"x": torch.randn(2, 3, 16, 16)}


CASES = {
    "llama": Case("hf_llama_mlp", _llama, _ids(), lambda m: m.model.layers[0].mlp, 2, hf=True),
    "gpt2": Case("hf_gpt2_mlp", _gpt2, _ids(), lambda m: m.transformer.h[0].mlp, 2, hf=True),
    "t5": Case("hf_t5_dense_act_dense", lambda: _t5(False), _ids(decoder_input_ids=lambda: torch.randint(0, V, (2, 5))),
               lambda m: m.encoder.block[0].layer[1].DenseReluDense, 4, hf=True),
    "t5_gated": Case("hf_t5_dense_gated_act_dense", lambda: _t5(True),
                     _ids(decoder_input_ids=lambda: torch.randint(0, V, (2, 5))),
                     lambda m: m.encoder.block[0].layer[1].DenseReluDense, 4, hf=True),
    "bert": Case("hf_bert_layer", _bert, _ids(), lambda m: m.encoder.layer[0], 2, hf=True),
    "vit": Case("hf_vit_mlp", _vit, _pixels, lambda m: m.encoder.layer[0].mlp if hasattr(m, "encoder")
                else m.layers[0].mlp, 2, hf=True),
    "timm_mlp": Case("timm_mlp", _timm_vit, _image, lambda m: m.blocks[0].mlp, 2),
    "timm_glu_mlp": Case("timm_glu_mlp", lambda: _timm_vit(mlp_layer="GluMlp", mlp_ratio=4), _image,
                         lambda m: m.blocks[0].mlp, 2),
    "timm_glu_mlp_gate_first": Case("timm_glu_mlp_gate_first", _glu_gate_first, lambda: {"input": torch.randn(2, 5, D)},
                                    lambda m: m[0], 1),
    "timm_swiglu": Case("timm_swiglu", lambda: _timm_vit(mlp_layer="SwiGLU", act_layer="silu"), _image,
                        lambda m: m.blocks[0].mlp, 2),
    "torch_encoder": Case("torch_transformer_layer", _torch_encoder, lambda: {"src": torch.randn(2, 5, D)},
                          lambda m: m.layers[0], 2),
    "torch_decoder": Case("torch_transformer_layer", _Decoder,
                          lambda: {"tgt": torch.randn(2, 5, D), "memory": torch.randn(2, 3, D)}, lambda m: m.layer, 1),
}
COVERED_ELSEWHERE = {"dense_ffn", "sequential"}  # tests/sparse_moe/test_upcycle.py


def _out(model: nn.Module, inputs: dict) -> torch.Tensor:
    out = model(**inputs) if "x" not in inputs else model(inputs["x"])
    if isinstance(out, torch.Tensor):
        return out
    return out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state


def _dense(case: Case) -> tuple[nn.Module, dict]:
    torch.manual_seed(0)
    model = case.build().double().eval()
    inputs = {k: v.double() if v.is_floating_point() else v for k, v in case.inputs().items()}
    return model, inputs


def test_every_registered_spec_has_a_case():
    assert set(FFN_SPECS.names()) == {c.spec for c in CASES.values()} | COVERED_ELSEWHERE


@pytest.mark.parametrize("name", list(CASES))
def test_upcycled_equals_dense_router_learns_and_save_load_round_trips(name, tmp_path):
    case = CASES[name]
    dense, x = _dense(case)
    assert candidates(case.ffn(dense))[0] == case.spec
    moe = moefy(copy.deepcopy(dense), num_experts=4, top_k=2)  # match=None: every FFN a spec recognises
    layers = [m.layer for m in moe.modules() if isinstance(m, MoEFFN)]
    assert len(layers) == case.n_ffn and all(not m.training for m in moe.modules())
    torch.testing.assert_close(_out(moe, x), _out(dense, x), rtol=0, atol=1e-10)
    assert max(int((a.tokens_per_expert > 0).sum()) for a in collect_aux(moe)) > 1  # routing really spreads

    moe.train()
    (_out(moe, x).square().mean() + total_aux_loss(collect_aux(moe))).backward()
    for layer in layers:
        assert layer.router.weight.grad.abs().sum() > 0 and layer.experts.w1.grad.abs().sum() > 0
    # Mixtral's top-k softmax sums to 1, so while the experts are identical the task gradient of its router is 0
    # (the balance loss above trains it); top-1 Switch with gate_norm=detached_sum gets one from step 0.
    top1 = moefy(copy.deepcopy(dense), num_experts=4, top_k=1).train()
    _out(top1, x).square().mean().backward()
    for m in top1.modules():  # far above rounding: relative to the experts' own gradient
        if isinstance(m, MoEFFN):
            assert m.layer.router.weight.grad.abs().max() > 1e-3 * m.layer.experts.w1.grad.abs().max()

    moe.eval()
    save_moefied(moe, tmp_path)
    loaded = load_moefied(tmp_path, model=None if case.hf else case.build()).eval()
    assert type(loaded) is type(moe) and sum(isinstance(m, MoEFFN) for m in loaded.modules()) == case.n_ffn
    assert torch.equal(_out(loaded, x), _out(moe, x))


def test_every_other_layer_and_the_hf_config():
    dense, x = _dense(CASES["llama"])
    moe = moefy(copy.deepcopy(dense), num_experts=4, top_k=2, every=2)
    assert [n for n, m in moe.named_modules() if isinstance(m, MoEFFN)] == ["model.layers.1.mlp"]
    assert (moe.config.num_local_experts, moe.config.num_experts_per_tok) == (4, 2)
    assert moe.config.moefy_recipes[0]["targets"] == ["model.layers.1.mlp"]
    assert moe.model.layers[1].mlp.layer.cfg.activation == "swiglu"  # gated source -> gated experts
    torch.testing.assert_close(_out(moe, x), _out(dense, x), rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="every must be >= 1, got 0"):
        moefy(copy.deepcopy(dense), every=0)


def _stack(d: int = 8) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, d))).double()


def test_tokens_dropped_at_step_0_warn_and_strict_refuses():
    dense, x = _stack(), torch.randn(64, 8).double()
    with pytest.warns(UserWarning, match=r"capacity_factor=1.0 < num_experts/top_k=4 can drop tokens"):
        moe = moefy(copy.deepcopy(dense), match="0", num_experts=4, capacity_factor=1.0)
    dropped = not torch.allclose(moe.train()(x), dense(x), atol=1e-6)  # the warning is about a real difference
    assert dropped and float(collect_aux(moe)[0].drop_fraction) > 0
    with pytest.raises(ValueError, match="capacity_factor=1.0.*strict=True"):
        moefy(copy.deepcopy(dense), match="0", num_experts=4, capacity_factor=1.0, strict=True)
    with pytest.raises(ValueError, match="second_expert_policy='random' drops"):
        moefy(copy.deepcopy(dense), match="0", num_experts=4, top_k=2, router="gshard",
              second_expert_policy="random", strict=True)
    # capacity >= T (cf >= E/k) cannot drop: no warning, the dense function
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        moe = moefy(copy.deepcopy(dense), match="0", num_experts=4, top_k=2, capacity_factor=2.0, strict=True)
    torch.testing.assert_close(moe.train()(x), dense(x), rtol=0, atol=1e-12)


def test_expert_choice_gets_its_gate_norm_and_a_warning():
    dense = _stack()
    with pytest.warns(UserWarning, match="'expert_choice' is expert choice"):
        moe = moefy(copy.deepcopy(dense), match="0", num_experts=4, top_k=2, router="expert_choice")
    assert moe[0].layer.cfg.gate_norm == "none"
    with pytest.raises(ValueError, match="expert_choice.*strict=True"):
        moefy(copy.deepcopy(dense), match="0", num_experts=4, router="expert_choice", strict=True)
    with pytest.raises(ValueError, match="expert choice combines with its own scores, use moe.gate_norm=none"):
        moefy(copy.deepcopy(dense), match="0", num_experts=4, router="expert_choice", gate_norm="sum")


class Odd(nn.Module):
    """An FFN no spec knows: sigmoid-gated, odd attribute names."""

    def __init__(self, d: int = 8):
        super().__init__()
        self.w_in, self.w_out = nn.Linear(d, 16), nn.Linear(16, d)

    def forward(self, x):
        return self.w_out(torch.tanh(self.w_in(x)))


def test_unknown_ffn_names_class_and_registry_and_a_user_spec_fixes_it():
    model = nn.Sequential(Odd()).double()
    with pytest.raises(ValueError, match=r"'0' \(Odd\(w_in: Linear, w_out: Linear\)\) is not a dense FFN.*"
                                         r"FFN_SPECS.register"):
        moefy(model, match="0")
    with pytest.raises(ValueError, match="no FFN a registered spec recognises in Sequential"):
        moefy(model)
    FFN_SPECS.register("test_odd")(FFNSpec(classes=("Odd",), up="w_in", down="w_out", activation="relu"))
    try:
        with pytest.raises(ValueError, match="test_odd: its forward differs"):  # tanh is not relu: the probe sees it
            moefy(copy.deepcopy(model), match="0")
        FFN_SPECS._items["test_odd"] = FFNSpec(classes=("Odd",), up="w_in", down="w_out", activation="relu",
                                               probe=lambda m, x: m.w_out(F.relu(m.w_in(x))))
        moefy(model)  # found by class; the probe checks the spec's own reading
        assert isinstance(model[0], MoEFFN)
    finally:
        FFN_SPECS._items.pop("test_odd")


def test_hidden_dropout_is_refused_unless_dropped():
    layer = nn.TransformerEncoderLayer(D, 4, F_, dropout=0.1, batch_first=True).double().eval()
    x = torch.randn(2, 5, D).double()
    with pytest.raises(ValueError, match=r"'0' has hidden dropout p=0.1.*drop_hidden_dropout=True"):
        moefy(nn.Sequential(copy.deepcopy(layer)))
    moe = moefy(nn.Sequential(copy.deepcopy(layer)), drop_hidden_dropout=True).eval()
    assert not hasattr(moe[0], "linear1") and moe[0].moe.layer.cfg.activation == "relu"
    torch.testing.assert_close(moe(x), layer(x), rtol=0, atol=1e-10)


def test_activations_are_identified_by_value():
    assert identify_activation(nn.GELU()) == "gelu" and identify_activation(nn.GELU("tanh")) == "gelu_tanh"
    assert identify_activation(F.silu) == "silu" and identify_activation(nn.ReLU()) == "relu"
    assert identify_activation(lambda x: x * torch.sigmoid(1.702 * x)) is None  # quick_gelu: not an expert act
    assert identify_activation(nn.Linear(3, 3)) is None


def test_import_sparse_moe_imports_neither_transformers_nor_timm():
    code = "import sys, sparse_moe; bad = {'transformers', 'timm'} & set(sys.modules); assert not bad, bad"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
