"""Tickets on pretrained transformers (lth.pretrained): which weights each preset prunes, rewinding to the loaded
checkpoint or to step k, and the baselines (Chen et al. 2020's BERT setting on a 2-layer, width-32 BERT)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lth import PRESETS, pretrained_ticket, run_imp
from lth.pretrained import preset_names

transformers = pytest.importorskip("transformers")

BERT_LAYER = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
              "intermediate.dense", "output.dense"]


def tiny_bert(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=16, num_labels=3)
    return transformers.BertForSequenceClassification(cfg).eval()  # dropout off: steps are deterministic


def tiny_gpt2() -> nn.Module:
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=40, n_embd=32, n_layer=2, n_head=2, n_positions=16,
                                  bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(cfg)


def test_bert_preset_selects_the_encoder_attention_and_ffn_linears_only():
    names = preset_names(tiny_bert(), "bert")
    assert names == [f"bert.encoder.layer.{i}.{m}.weight" for i in range(2) for m in BERT_LAYER]


def test_globs_override_the_preset():
    model = tiny_bert()
    assert preset_names(model, "bert", include=["*pooler.dense.weight"])[-1] == "bert.pooler.dense.weight"
    kept = preset_names(model, "bert", exclude=["*.layer.0.*"])
    assert kept == [f"bert.encoder.layer.1.{m}.weight" for m in BERT_LAYER]


def test_gpt2_conv1d_and_the_attention_ffn_split():
    model = tiny_gpt2()
    attention = [f"transformer.h.{i}.attn.{m}.weight" for i in range(2) for m in ("c_attn", "c_proj")]
    ffn = [f"transformer.h.{i}.mlp.{m}.weight" for i in range(2) for m in ("c_fc", "c_proj")]
    assert preset_names(model, "transformer_attention") == attention
    assert preset_names(model, "transformer_ffn") == ffn
    assert sorted(preset_names(model, "transformer")) == sorted(attention + ffn)  # lm_head (tied to wte) excluded


def test_torch_transformer_encoder_packed_attention():
    torch.manual_seed(0)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), num_layers=2)
    model = nn.Sequential(nn.Embedding(10, 16), enc, nn.Linear(16, 3))
    per_layer = ["self_attn.in_proj_weight", "self_attn.out_proj.weight", "linear1.weight", "linear2.weight"]
    assert preset_names(model, "transformer") == [f"1.layers.{i}.{n}" for i in range(2) for n in per_layer]


def test_a_model_without_blocks_fails_naming_the_preset():
    with pytest.raises(ValueError, match="preset 'transformer'.*no weight of Sequential"):
        preset_names(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))
    with pytest.raises(KeyError, match="ticket preset 'nope'; registered: bert"):
        PRESETS.get("nope")


def _batches(n: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randint(0, 40, (4, 8), generator=g), torch.randint(0, 3, (4,), generator=g)) for _ in range(n)]


def _trainer(steps: int, starts: dict):
    """train_fn of run_imp: SGD on fixed batches, remembering each unit's starting weights and mask."""
    def train(model, unit) -> dict:
        starts[(unit.level, unit.kind)] = (copy.deepcopy(model.state_dict()), unit.mask)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        for step, (x, y) in enumerate(_batches(steps)[unit.start_step:], start=unit.start_step):
            if step == unit.rewind_step and unit.level == 0:
                unit.snapshot(step, opt)
                starts["rewind_point"] = copy.deepcopy(model.state_dict())
            loss = nn.functional.cross_entropy(model(input_ids=x).logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            unit.apply()
        return {}
    return train


@pytest.mark.parametrize("rewind", [0, 2])
def test_bert_ticket_rewinds_to_the_pretrained_or_step_k_weights_and_baselines_differ(rewind):
    model = tiny_bert()
    pretrained = copy.deepcopy(model.state_dict())
    names = preset_names(model, "bert")
    starts: dict = {}
    rows = run_imp(model, _trainer(4, starts), levels=2, names=names, rewind=rewind, strategy="magnitude_global",
                   rates=0.1, seed=0)
    assert [(r["lth/level"], r["lth/kind"]) for r in rows] == [
        (0, "ticket"), (1, "ticket"), (1, "random_reinit"), (1, "random_prune"),
        (2, "ticket"), (2, "random_reinit"), (2, "random_prune")]
    point = starts["rewind_point"]
    assert all(torch.equal(point[k], pretrained[k]) for k in pretrained) == (rewind == 0)  # step 0 = the checkpoint
    for level in (1, 2):
        state, mask = starts[(level, "ticket")]
        assert sorted(mask) == sorted(names)  # masks only on the preset's layers
        assert abs(sum(int(m.sum()) for m in mask.values()) / sum(m.numel() for m in mask.values())
                   - 0.9 ** level) < 1e-3
        for k, v in state.items():
            if k in mask:  # rewound weights under the mask, zero elsewhere
                assert torch.equal(v[mask[k]], point[k][mask[k]])
                assert int((v[~mask[k]] != 0).sum()) == 0
            else:
                assert torch.equal(v, point[k]), k  # embeddings, LayerNorms, pooler, head: rewound, unmasked
        reinit, reinit_mask = starts[(level, "random_reinit")]
        assert all(torch.equal(reinit_mask[n], mask[n]) for n in names)  # same mask, new initialisation
        emb = "bert.embeddings.word_embeddings.weight"
        assert not torch.equal(reinit[emb], pretrained[emb])
        assert 0.01 < float(reinit[emb].std()) < 0.03  # BERT's own init (std 0.02), not nn.Embedding's N(0, 1)
        rp_state, rp_mask = starts[(level, "random_prune")]
        assert any(not torch.equal(rp_mask[n], mask[n]) for n in names)  # another mask of the same layer densities
        assert all(int(rp_mask[n].sum()) == int(mask[n].sum()) for n in names)  # layer-wise random pruning
        for n in names:
            assert torch.equal(rp_state[n], point[n] * rp_mask[n])


def test_pretrained_ticket_in_your_own_loop():
    """rewind="init": the loaded checkpoint is the snapshot; prune + rewind gives pretrained * mask."""
    model = tiny_bert()
    pretrained = copy.deepcopy(model.state_dict())
    ticket = pretrained_ticket(model, "bert", strategy="magnitude_global", rates=0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for x, y in _batches(3):
        nn.functional.cross_entropy(model(input_ids=x).logits, y).backward()
        opt.step()
        opt.zero_grad()
        ticket.apply()
    ticket.prune()
    ticket.rewind()
    state = model.state_dict()
    for k in pretrained:
        expected = pretrained[k] * ticket.mask[k] if k in ticket.mask else pretrained[k]
        assert torch.equal(state[k], expected), k
    assert abs(sum(int(m.sum()) for m in ticket.mask.values()) / sum(m.numel() for m in ticket.mask.values())
               - 0.5) < 1e-3
