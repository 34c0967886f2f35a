"""model=hf (a local checkpoint written by save_pretrained) and model=timm in the lth task; data=mnist1d_tokens."""

from __future__ import annotations

import json

import pytest
import torch

from experiments.config import validate
from experiments.schema import ConfigError
from tests.helpers import FAST, compose, run_cli

transformers = pytest.importorskip("transformers")

BERT_LAYER = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
              "intermediate.dense", "output.dense"]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    """A 2-layer, width-32 BERT sequence classifier (10 labels), saved as a local checkpoint."""
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=64, num_labels=10)
    path = tmp_path_factory.mktemp("ckpt") / "bert"
    transformers.BertForSequenceClassification(cfg).save_pretrained(path)
    return path


def test_tokens_dataset_shapes_and_next_token_targets():
    from lth.data import load_dataset

    d = load_dataset("mnist1d_tokens", num_samples=200, vocab_size=16)
    assert d.x_train.shape[1] == 40 and d.x_train.dtype == torch.int64 and d.num_classes == 10
    assert int(d.x_train.min()) == 0 and int(d.x_train.max()) == 15  # the training range spans every bin
    lm = load_dataset("mnist1d_tokens", num_samples=200, vocab_size=16, target="next_token")
    assert lm.num_classes == 16 and torch.equal(lm.x_train[:, 1:], lm.y_train[:, :-1])
    assert torch.equal(lm.x_train, d.x_train[:, :-1])


def test_cli_runs_imp_on_a_local_checkpoint_and_rewinds_to_it(bert_dir, tmp_path):
    out = tmp_path / "run"
    r = run_cli(["experiment=lth_mnist1d", "data=mnist1d_tokens", "model=hf", f"model.name_or_path={bert_dir}",
                 "model.preset=bert", *FAST, f"hydra.run.dir={out}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads((out / "summary.json").read_text())["records"]
    assert [(x["lth/level"], x["lth/kind"]) for x in rows] == [
        (0, "ticket"), (1, "ticket"), (1, "random_reinit"), (1, "random_prune"),
        (2, "ticket"), (2, "random_reinit"), (2, "random_prune")]
    assert [round(x["lth/percent_remaining"]) for x in rows] == [100, 80, 80, 80, 64, 64, 64]
    assert rows[1]["flops/infer_per_sample"] < rows[0]["flops/infer_per_sample_dense"]
    mask = torch.load(out / "levels" / "level_01" / "mask.pt", weights_only=True)["mask"]
    assert sorted(mask) == sorted(f"model.bert.encoder.layer.{i}.{m}.weight" for i in range(2) for m in BERT_LAYER)
    # The rewind point (method.rewind=0) is the checkpoint as loaded, every tensor of it.
    from safetensors.torch import load_file

    loaded = load_file(bert_dir / "model.safetensors")
    rewind = torch.load(out / "levels" / "rewind.pt", weights_only=True)["model"]
    assert all(torch.equal(rewind[f"model.{k}"], v) for k, v in loaded.items())


def test_a_missing_checkpoint_folder_is_an_input_error_naming_it(tmp_path):
    missing = tmp_path / "no_such_checkpoint"
    r = run_cli(["experiment=lth_mnist1d", "data=mnist1d_tokens", "model=hf", f"model.name_or_path={missing}",
                 *FAST, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert r.returncode == 4, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert "input error" in last and "model.name_or_path" in last and "no_such_checkpoint" in last


@pytest.mark.parametrize("overrides, message", [
    (["data=mnist1d"], "data='mnist1d' is invalid; allowed: token data"),
    (["data=mnist1d_tokens", "data.vocab_size=64"], "data.vocab_size=64 is invalid; allowed: <= the checkpoint's "
                                                    "vocab_size 40"),
    (["data=mnist1d_tokens", "model.head=causal_lm"], "data.target='label' is invalid; allowed: next_token"),
    (["data=mnist1d_tokens", "model.head=seq2seq"], "model.head='seq2seq' is invalid; allowed: "
                                                   "sequence_classification, causal_lm"),
])
def test_hf_config_errors_name_the_key(bert_dir, overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose(["model=hf", f"model.name_or_path={bert_dir}", *overrides]))


@pytest.mark.slow
def test_cli_causal_lm_gpt2(tmp_path):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=40, n_embd=32, n_layer=2, n_head=2, n_positions=64, bos_token_id=0,
                                  eos_token_id=0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "gpt2")
    out = tmp_path / "run"
    r = run_cli(["experiment=lth_mnist1d", "data=mnist1d_tokens", "data.target=next_token", "model=hf",
                 "model.head=causal_lm", f"model.name_or_path={tmp_path / 'gpt2'}", *FAST, f"hydra.run.dir={out}"],
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads((out / "summary.json").read_text())["records"]
    assert len(rows) == 7 and 0.0 <= rows[0]["acc/test"] <= 1.0
    mask = torch.load(out / "levels" / "level_01" / "mask.pt", weights_only=True)["mask"]
    assert sorted(mask) == sorted(f"model.transformer.h.{i}.{a}.{m}.weight" for i in range(2)
                                  for a, m in (("attn", "c_attn"), ("attn", "c_proj"), ("mlp", "c_fc"),
                                               ("mlp", "c_proj")))


def test_timm_model_by_name():
    pytest.importorskip("timm")
    cfg = validate(compose(["model=timm", "model.name=resnet10t", "+model.kwargs.in_chans=1"]))
    model = cfg.model.build(in_features=28 * 28, num_classes=7)
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 7)
    with pytest.raises(ConfigError, match="model.name='resnet_nope' is invalid; allowed: a timm model name"):
        validate(compose(["model=timm", "model.name=resnet_nope"]))
