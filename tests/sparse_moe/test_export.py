"""Safetensors export round trips in both key layouts."""

import pytest
import torch
from safetensors.torch import load_file

from sparse_moe.export import export_state, load_safetensors, save_safetensors
from sparse_moe.models import MoEConfig, RegressionMLPConfig, build_model


def _model(seed):
    torch.manual_seed(seed)
    cfg = RegressionMLPConfig(num_blocks=2, moe=MoEConfig(num_experts=3, bias=True, router="deepseek_v3", top_k=2))
    return build_model("regression_mlp", cfg)


@pytest.mark.parametrize("layout", ["stacked", "per_expert"])
def test_round_trip(tmp_path, layout):
    src, dst = _model(0), _model(1)
    path = str(tmp_path / f"m.{layout}.safetensors")
    save_safetensors(src, path, layout)
    load_safetensors(dst, path)
    for (k, a), (k2, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    x = torch.randn(5, 32)
    assert torch.equal(src(x)[0], dst(x)[0])


def test_key_layouts(tmp_path):
    m = _model(0)
    per = export_state(m, "per_expert")
    stacked = export_state(m, "stacked")
    assert per["ffns.0.inner.experts.2.w1"].shape == (64, 64)
    assert stacked["ffns.0.inner.experts.w1"].shape == (3, 64, 64)
    assert torch.equal(per["ffns.1.inner.experts.1.b2"], stacked["ffns.1.inner.experts.b2"][1])
    assert "ffns.0.inner.experts.w1" not in per
    assert "ffns.0.inner.router.score_bias" in per  # non-expert tensors keep their keys
    path = str(tmp_path / "p.safetensors")
    save_safetensors(m, path, "per_expert")
    assert set(load_file(path)) == set(per)


def test_bad_layout_and_missing_key(tmp_path):
    m = _model(0)
    with pytest.raises(ValueError, match="layout 'nope' unknown; allowed: stacked, per_expert"):
        export_state(m, "nope")
    from safetensors.torch import save_file

    per = export_state(m, "per_expert")
    del per["ffns.0.inner.experts.1.w2"]
    path = str(tmp_path / "broken.safetensors")
    save_file(per, path, metadata={"sparse_moe_layout": "per_expert"})
    with pytest.raises(KeyError, match="experts.1.w2"):
        load_safetensors(m, path)
