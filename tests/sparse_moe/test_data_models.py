"""Data determinism and provenance; every registered model honours the (output, auxes) contract."""

import hashlib

import pytest
import torch

from sparse_moe import aux_stats, total_aux_loss
from sparse_moe.data import (
    ClusteredRegressionConfig,
    load_char_corpus,
    make_clustered_regression,
)
from sparse_moe.models import MODELS, CharTransformerConfig, MoEConfig, RegressionMLPConfig, build_model


def test_clustered_regression_seeded_and_shaped():
    cfg = ClusteredRegressionConfig(n_train=512, n_test=128)
    a, b = make_clustered_regression(cfg), make_clustered_regression(cfg)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    c = make_clustered_regression(ClusteredRegressionConfig(n_train=512, n_test=128, seed=1))
    assert not torch.equal(a.x_train, c.x_train)
    assert a.x_train.shape == (512, 32) and a.y_train.shape == (512, 4) and a.x_test.shape == (128, 32)
    assert set(a.cluster_train.tolist()) == set(range(16))
    assert torch.allclose(a.y_train.std(0), torch.ones(4), atol=1e-5)


def test_clustered_regression_validates():
    with pytest.raises(ValueError, match="num_clusters"):
        ClusteredRegressionConfig(num_clusters=0)


def test_char_corpus_default_records_sources():
    corpus = load_char_corpus()
    assert len(corpus.sources) >= 5
    assert all(len(h) == 64 for _, h in corpus.sources)
    assert corpus.decode(corpus.data[:200]).startswith(corpus.decode(corpus.data[:10]))
    x, y = corpus.get_batch("train", 3, 16, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (3, 16) and torch.equal(x[:, 1:], y[:, :-1])


def test_char_corpus_from_path(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("abcabcabd" * 20)
    corpus = load_char_corpus(str(p), val_fraction=0.25)
    assert corpus.vocab == ["a", "b", "c", "d"]
    assert corpus.sources == [(str(p), hashlib.sha256(p.read_bytes()).hexdigest())]
    assert len(corpus.split("train")) == 135 and corpus.decode(corpus.split("val")[:3]) == "abc"
    with pytest.raises(FileNotFoundError, match="data.path"):
        load_char_corpus(str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="split must be"):
        corpus.split("test")


def _small_cfg(name, ffn):
    moe = MoEConfig(num_experts=4, top_k=1)
    if name == "regression_mlp":
        return RegressionMLPConfig(d_model=16, d_ff=16, num_blocks=2, ffn=ffn, moe=moe), torch.randn(6, 32)
    cfg = CharTransformerConfig(vocab_size=11, block_size=8, n_layer=3, n_head=2, d_model=16, d_ff=32, ffn=ffn,
                                moe_every=2, moe=moe)
    return cfg, torch.randint(0, 11, (2, 8))


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("ffn", ["dense", "moe"])
def test_model_contract(name, ffn):
    torch.manual_seed(0)
    cfg, x = _small_cfg(name, ffn)
    model = build_model(name, cfg)
    out, auxes = model(x)
    n_moe = 0 if ffn == "dense" else 2  # regression: both blocks; char: blocks 0 and 2 of 3 (moe_every=2)
    assert len(auxes) == n_moe
    loss = out.float().pow(2).mean() + total_aux_loss(auxes)
    loss.backward()
    stats = aux_stats(auxes)
    assert len(stats) == 8 * n_moe
    if n_moe:
        assert "moe/layer1/drop_fraction" in stats


def test_build_model_errors():
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        build_model("nope", RegressionMLPConfig())
    with pytest.raises(ValueError, match="needs a CharTransformerConfig"):
        build_model("char_transformer", RegressionMLPConfig())
    with pytest.raises(ValueError, match="model.ffn 'sparse' unknown"):
        RegressionMLPConfig(ffn="sparse")
    with pytest.raises(ValueError, match="divisible"):
        CharTransformerConfig(d_model=10, n_head=4)
