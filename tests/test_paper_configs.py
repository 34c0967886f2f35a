"""The seed papers' configurations (issue 18): each composes with its paper values, and runs end to end under
`debug=fast` on a miniature of its real on-disk format (CIFAR python batches, ImageNet JPEG folders, AR-Net list
files over frame folders, nanoGPT token bins). Models too slow for 2 CPU cores at full size are shrunk through
ordinary overrides listed in `SHRINK` (the composed paper values are checked before shrinking)."""

from __future__ import annotations

import dataclasses
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


AF_SHRINK = ["model.backbone=tiny_cnn", "model.backbones=null", "model.pretrained=none", "model.resolutions=[32,24,16]",
             "model.policy.encoder=tiny_cnn", "model.policy.input_size=16", "model.policy.feature_dim=16",
             "model.policy.hidden=16", "data.size=32", "optim.batch_size=4"]

PAPERS: dict[str, Paper] = {
    "lth_vgg16_cifar10": Paper(mini.cifar10_batches),
    "moe_gpt_small": Paper(mini.token_bins, ["model.n_layer=2", "model.d_model=32", "model.n_head=2",
                                             "model.d_ff=64", "model.block_size=32"],
                           ("gpt_small_dense", "gpt_small_moe")),
    # in memory here (undecorated); the stored config streaming (data.in_memory=false): tests/test_ofa_stream.py
    "ofa_imagenet": Paper(mini.imagenet_folders, ["data.in_memory=true", "data.transform=none", "model.resolutions=[32]",
                                                  "model.stage_widths=[8,8,16,16,24]", "model.stem_channels=8",
                                                  "model.first_block_channels=8", "model.head_channels=32",
                                                  "model.feature_channels=32"]),
    "af_activitynet": Paper(mini.arnet_frame_lists, AF_SHRINK),
    "af_minikinetics": Paper(mini.arnet_video_files, AF_SHRINK),  # as encoded videos, decoded with PyAV
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
    # full size on the meta device, GPT-2 BPE vocabulary: the dense model is GPT-2 small with an untied head
    # (124.4 M + 38.6 M); the MoE model adds 7 more experts and a router in each of its 6 MoE blocks
    sizes = {}
    for kind, variant in (("moe", []), ("dense", ["variant=gpt_small_dense"])):
        typed = validate(compose(["experiment=moe_gpt_small", "data.path=x", *variant])).model
        with torch.device("meta"):
            net = CharTransformer(dataclasses.replace(typed, vocab_size=50257))
        sizes[kind] = sum(p.numel() for p in net.parameters())
    assert sizes["dense"] == 162_991_104
    assert sizes["moe"] - sizes["dense"] == 6 * (7 * 2 * 768 * 3072 + 768 * 8)


def test_ofa_imagenet_is_the_papers_progressive_shrinking():
    cfg = compose(["experiment=ofa_imagenet"])
    phases = [(p.name, p.epochs, p.lr, p.subnets_per_step, p.warmup_epochs) for p in cfg.method.phases]
    assert phases == [("full", 180, 2.6, 1, 5), ("kernel", 125, 0.96, 1, 5), ("depth_1", 25, 0.08, 2, 0.0),
                      ("depth_2", 125, 0.24, 2, 5), ("expand_1", 25, 0.08, 4, 0.0), ("expand_2", 125, 0.24, 4, 5)]
    assert [p.reorder_before for p in cfg.method.phases] == [False] * 4 + [True] * 2
    assert list(cfg.model.resolutions) == list(range(128, 225, 4)) and cfg.model.dropout == 0.1
    assert (list(cfg.model.kernel_sizes), list(cfg.model.expand_ratios), list(cfg.model.depths)) == (
        [3, 5, 7], [3, 4, 6], [2, 3, 4])
    assert (cfg.data.name, cfg.data.transform, cfg.data.crop_size) == ("image_folder", "imagenet", 224)
    assert (cfg.optim.weight_decay, cfg.method.kd_weight, cfg.method.label_smoothing) == (3e-5, 1.0, 0.1)


def test_debug_fast_keeps_each_phases_warmup_share():
    """debug caps a 180-epoch phase to 1 epoch: its 5 warm-up epochs become 5/180 of it (not a config error)."""
    cfg = compose(["experiment=ofa_imagenet", "debug=fast"])
    assert [(p.epochs, p.warmup_epochs) for p in cfg.method.phases[:2]] == [(1, 5 / 180), (1, 5 / 125)]
    validate(cfg)


@pytest.mark.parametrize("name, metric", [("af_activitynet", "map"), ("af_minikinetics", "acc")])
def test_af_configs_are_ar_nets(name, metric):
    cfg = compose([f"experiment={name}"])
    m = cfg.model
    assert (list(m.backbones), list(m.resolutions), list(m.skips)) == (
        ["resnet50", "resnet34", "resnet18"], [224, 168, 112], [1, 2, 4])
    assert (m.policy.encoder, m.policy.input_size, m.policy.cell, m.policy.hidden) == ("mobilenet_v2", 84, "lstm", 512)
    assert m.policy_as_backbone and m.pretrained == "imagenet" and cfg.data.num_segments == 16
    assert cfg.data.multilabel == (metric == "map") and cfg.data.num_classes == 200


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


def _check_ofa(rows: list[dict]) -> None:
    kinds = [r["ofa/kind"] for r in rows]
    assert kinds[0] == "supernet" and kinds.count("ofa_corner") == 8 and kinds.count("ofa_target") == 4, kinds
    assert rows[0]["ofa/training"] == "progressive"


def _check_af(metric: str) -> Callable:
    def check(rows: list[dict]) -> None:
        learned = next(r for r in rows if r["af/method"] == "learned")
        assert learned[f"{metric}/test"] is not None and 0 <= learned[f"{metric}/test"] <= 1
        other = {"map": "acc", "acc": "map"}[metric]
        assert all(r[f"{other}/test"] is None for r in rows)
        assert learned["flops/infer_per_sample"] <= learned["flops/infer_per_sample_dense"]
    return check


CHECKS: dict[str, Callable] = {"lth_vgg16_cifar10": _check_vgg, "moe_gpt_small": _check_gpt, "ofa_imagenet": _check_ofa,
                               "af_activitynet": _check_af("map"), "af_minikinetics": _check_af("acc")}
