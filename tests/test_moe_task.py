"""The sparse-MoE task through the runner: rows, FLOPs bounds, routing stats, skip on rerun."""

import json

import pytest

import experiments.run as runner
from experiments.records import check_rows
from tests.helpers import compose

SMALL = ["progress=false", "optim.epochs=1", "data.n_train=1024", "data.n_test=256"]


@pytest.mark.parametrize("variant", ["moe_top1", "moe_top2", "dense_active"])
def test_clustered_regression_rows(tmp_path, variant):
    rows = runner.run_job(compose(["experiment=moe_clustered", f"variant={variant}", *SMALL]), tmp_path)
    (row,) = rows
    check_rows([row])
    assert row["mse/test"] == pytest.approx(row["loss/test"], rel=1e-5)
    if variant == "dense_active":
        assert row["flops/infer_per_sample"] == row["flops/infer_per_sample_dense"]
        assert row["params/active_per_token"] == row["params/total"]
    else:
        k = row["moe/top_k"]
        assert row["flops/infer_per_sample"] < row["flops/infer_per_sample_dense"]
        assert row["final/moe/layer0/drop_fraction"] == 0.0  # dropless by default
        assert row["params/active_per_token"] < row["params/total"]
        assert k in (1, 2)
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "completed"


def test_equal_active_flops_between_moe_top1_and_dense_active(tmp_path):
    moe = runner.run_job(compose(["experiment=moe_clustered", "variant=moe_top1", *SMALL]), tmp_path / "a")[0]
    dense = runner.run_job(compose(["experiment=moe_clustered", "variant=dense_active", *SMALL]), tmp_path / "b")[0]
    # Same FFN width per token; the MoE adds only its router (d_model x E) and nothing else.
    router = 2 * 64 * 16
    assert moe["flops/infer_per_sample"] - dense["flops/infer_per_sample"] == router


def test_char_lm_on_default_corpus_records_sources(tmp_path):
    cfg = compose(["experiment=moe_charlm", "progress=false", "optim.steps=4", "optim.eval_every=2",
                   "data.max_chars=20000", "model.ffn=moe", "model.d_ff=128", "model.moe.num_experts=4"])
    (row,) = runner.run_job(cfg, tmp_path)
    assert row["bpc/test"] > 0 and "python3" in row["data/sources"]
    assert row["moe/num_experts"] == 4
    rerun = runner.run_job(cfg, tmp_path)  # finished: skipped, same row
    assert rerun[0]["bpc/test"] == row["bpc/test"]


CHARLM_TINY = ["experiment=moe_charlm", "progress=false", "optim.steps=4", "optim.eval_every=2",
               "data.max_chars=20000"]


@pytest.mark.parametrize("variant,experts", [("charlm_e4_top2", 4), ("charlm_e16_top1", 16)])
def test_charlm_variants_match_dense_active_flops(tmp_path, variant, experts):
    dense = runner.run_job(compose([*CHARLM_TINY, "variant=charlm_dense"]), tmp_path / "d")[0]
    moe = runner.run_job(compose([*CHARLM_TINY, f"variant={variant}"]), tmp_path / "m")[0]
    # Per sample = one window of block_size=64 tokens through n_layer=2 blocks; the MoE adds only its routers.
    router = 2 * 64 * experts * 64 * 2
    assert moe["flops/infer_per_sample"] - dense["flops/infer_per_sample"] == router
    for row in (dense, moe):  # the scaling curve: evaluations at steps 2 and 4, FLOPs counted so far
        curve = row["curve/val"]
        assert [p["step"] for p in curve] == [2, 4]
        assert curve[-1]["flops_train"] == row["flops/train_total"] == 2 * curve[0]["flops_train"]
        assert curve[-1]["bpc/val"] == row["bpc/val"]
