"""The seed papers' configurations (issue 18): each composes with its paper values, and runs end to end under
`debug=fast` on a miniature of its real on-disk format (CIFAR python batches, ImageNet JPEG folders, AR-Net list
files over frame folders, nanoGPT token bins). Models too slow for 2 CPU cores at full size are shrunk through
ordinary overrides listed in `SHRINK` (the composed paper values are checked before shrinking)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch

from experiments.config import validate
from tests import paper_miniatures as mini
from tests.helpers import FAST, compose, run_cli


@dataclass(frozen=True)
class Paper:
    write: Callable  # (folder) -> overrides pointing the run at the miniature
    shrink: list[str] = field(default_factory=list)  # overrides that make the model CPU-test sized
    variants: tuple[str, ...] = ()  # stored variants that must compose too


PAPERS: dict[str, Paper] = {
    "lth_vgg16_cifar10": Paper(mini.cifar10_batches),
    "moe_gpt_small": Paper(mini.token_bins, ["model.n_layer=2", "model.d_model=32", "model.n_head=2",
                                             "model.d_ff=64", "model.block_size=32"],
                           ("gpt_small_dense", "gpt_small_moe")),
}


@pytest.mark.parametrize("name", sorted(PAPERS))
def test_every_paper_config_composes_and_validates(name, tmp_path):
    overrides = [f"experiment={name}", *PAPERS[name].write(tmp_path)]
    for variant in (None, *PAPERS[name].variants):
        cfg = compose(overrides + ([f"variant={variant}"] if variant else []))
        validate(cfg)
        assert cfg.name == name


def test_lth_vgg16_cifar10_is_frankle_2020s_recipe(tmp_path):
    cfg = compose(["experiment=lth_vgg16_cifar10"])
    o, m = cfg.optim, cfg.method
    assert (o.name, o.lr, o.momentum, o.weight_decay, o.batch_size, o.epochs) == ("sgd", 0.1, 0.9, 1e-4, 128, 160)
    assert o.schedule == "multistep" and [round(x * 160) for x in o.milestones] == [80, 120] and o.gamma == 0.1
    assert (m.strategy, m.prune_fraction, list(m.exclude), cfg.model.name) == (
        "magnitude_global", 0.2, ["fc.weight"], "vgg16")


def test_moe_gpt_small_is_gpt2_small_shaped_with_switch_every_other_layer():
    from sparse_moe.models import CharTransformer

    moe, dense = (compose(["experiment=moe_gpt_small", *v]).model for v in ([], ["variant=gpt_small_dense"]))
    assert (moe.n_layer, moe.d_model, moe.n_head, moe.block_size, moe.d_ff) == (12, 768, 12, 1024, 3072)
    assert (moe.moe.num_experts, moe.moe.top_k, moe.moe.router, moe.moe_every) == (8, 1, "switch", 2)
    # equal active FFN FLOPs: top-1 over experts of the dense width; nothing else differs
    assert dense.ffn == "dense" and dense.d_ff == moe.d_ff * moe.moe.top_k
    assert {k: v for k, v in dense.items() if k not in ("ffn",)} == {k: v for k, v in moe.items() if k != "ffn"}
    # half of the 12 blocks are MoE (built narrow: the block pattern does not depend on widths)
    small = validate(compose(["experiment=moe_gpt_small", "model.d_model=24", "model.n_head=2", "model.d_ff=8",
                              "model.block_size=8", "data.path=x"])).model
    kinds = [type(b.ffn.inner).__name__ for b in CharTransformer(small).blocks]
    assert kinds == ["DenseFFN", "MoELayer"] * 6


def _run(name: str, tmp_path, extra: list[str] = ()) -> list[dict]:
    paper = PAPERS[name]
    args = [*FAST, "meter=off", f"experiment={name}", *paper.write(tmp_path / "data"), *paper.shrink, *extra,
            f"hydra.run.dir={tmp_path / 'run'}"]
    proc = run_cli(args, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["records"]
    assert all(r["experiment"] == name for r in summary["records"])
    return summary["records"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PAPERS))
def test_every_paper_config_runs_end_to_end_on_its_miniature(name, tmp_path):
    rows = _run(name, tmp_path)
    CHECKS.get(name, lambda rows: None)(rows)


def _check_vgg(rows: list[dict]) -> None:
    """Full VGG-16 (no shrink): 14,728,266 parameters; level 1 prunes 20% of the conv weights, never fc.weight."""
    from lth import build_model

    model = build_model("vgg16", 3072, 10)
    convs = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert [r["params/total"] for r in rows] == [14_728_266] * len(rows)
    assert rows[0]["params/nonzero"] == 14_728_266
    assert rows[1]["params/nonzero"] == 14_728_266 - round(0.2 * convs)
    assert rows[0]["flops/infer_per_sample_dense"] == 2 * 313_201_664  # 313.2 M multiply-adds at 32^2


def _check_gpt(rows: list[dict]) -> None:
    (row,) = rows
    assert row["data/vocab_size"] == 256 and row["moe/num_experts"] == 8 and row["moe/top_k"] == 1
    assert row["flops/infer_per_sample"] < row["flops/infer_per_sample_dense"]  # 1 of 8 experts active


CHECKS: dict[str, Callable] = {"lth_vgg16_cifar10": _check_vgg, "moe_gpt_small": _check_gpt}
