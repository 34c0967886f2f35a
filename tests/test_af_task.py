"""The adaptive-frames task through the runner: rows per method, exact FLOPs of baselines, backbone cache, resume,
real frame folders, and config errors."""

import json
import signal

import numpy as np
import pytest
from PIL import Image

import experiments.run as runner
from experiments.config import ConfigError, validate
from experiments.errors import InputError
from experiments.preemption import Preempted, PreemptionFlag
from experiments.records import check_rows
from experiments.tasks.adaptive_frames import build_af_model
from experiments.tasks.af_data import needle
from tests.helpers import compose

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ["experiment=af_needle", "progress=false", "data.num_train=48", "data.num_test=32", "method.pretrain_epochs=1",
        "method.policy_epochs=2", "method.uniform_k=[1,4]", "method.frame_exit_thresholds=[0.9]"]


def by_method(rows):
    return {(r["af/method"], r["af/setting"]): r for r in rows}


def test_rows_carry_the_contract_and_exact_baseline_flops(tmp_path):
    cfg = compose([*TINY, f"paths.output_root={tmp_path}/out"])
    rows = runner.run_job(cfg, tmp_path / "a")
    check_rows(rows)  # raises naming the row and the missing contract key
    rows_by = by_method(rows)
    typed = validate(cfg)
    costs = build_af_model(typed, needle(typed)).costs()
    t, top = 16, costs.backbone[0]
    dense = rows_by[("dense_top", "T=16@64")]
    assert dense["flops/infer_per_sample"] == dense["flops/infer_per_sample_dense"] == t * top
    assert rows_by[("uniform", "k=1@32")]["flops/infer_per_sample"] == costs.backbone[2]
    assert rows_by[("uniform", "k=4@48")]["flops/infer_per_sample"] == 4 * costs.backbone[1]
    assert rows_by[("oracle", "needles@64")]["flops/infer_per_sample"] == 2 * top  # 2 informative frames
    learned = rows[0]
    assert learned["af/method"] == "learned" and learned["af/pretrain_source"] == "trained"
    assert learned["gmacs/mean"] == pytest.approx(learned["gflops/mean"] / 2)
    assert learned["energy/per_video_j"] == pytest.approx(learned["energy/joules"] / 32)
    assert learned["train/joules"] > 0 and learned["flops/train_total"] > 0
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["status"] == "completed"
    assert not (tmp_path / "a" / "checkpoint.pt").exists()

    # Pretraining: 1 epoch of 48 clips x 16 frames through each backbone, forward (exactly the per-frame count)
    # plus a counted backward, which for these CNNs costs between 1x and 2x the forward.
    forward = 48 * t * sum(costs.backbone)
    assert 2 * forward <= learned["flops/pretrain"] <= 3 * forward
    assert rows_by[("uniform", "k=1@32")]["flops/train_total"] == learned["flops/pretrain"]
    assert learned["flops/train_total"] > learned["flops/pretrain"] + forward  # + precompute + policy stage

    # A second job with another lam reuses the cached backbones: same baselines and the same recipe FLOPs.
    rows2 = runner.run_job(compose([*TINY, f"paths.output_root={tmp_path}/out", "method.lam=1.0"]), tmp_path / "b")
    assert rows2[0]["af/pretrain_source"].startswith("cache:")
    assert by_method(rows2)[("uniform", "k=4@48")]["acc/test"] == rows_by[("uniform", "k=4@48")]["acc/test"]
    assert rows2[0]["flops/train_total"] == learned["flops/train_total"]
    assert rows2[0]["train/joules"] < learned["train/joules"]  # no pretraining ran in this job


class PreemptAfter:
    """A preemption flag that trips once `n` stage epochs have checkpointed (counted by polls)."""

    def __init__(self, n: int) -> None:
        self.n, self.polls = n, 0
        self.signum = signal.SIGTERM

    def poll(self) -> bool:  # the loops' cross-rank check (one process here)
        self.polls += 1
        self.agreed = self.signum if self.polls >= self.n else None
        return self.agreed is not None

    def forward(self, signum):
        return False


def test_preempted_run_resumes_to_the_same_result(tmp_path):
    overrides = [*TINY, "method.backbone_cache=false", "method.baselines=[dense_top]"]
    clean = runner.run_job(compose(overrides), tmp_path / "clean")
    flag = PreemptAfter(4)  # after pretrain/0, pretrain/1, pretrain/2 and policy epoch 0
    with pytest.raises(Preempted):
        runner.run_job(compose(overrides), tmp_path / "cut", preemption=flag)
    assert (tmp_path / "cut" / "checkpoint.pt").exists() and not (tmp_path / "cut" / "summary.json").exists()
    resumed = runner.run_job(compose(overrides), tmp_path / "cut", preemption=PreemptionFlag())
    for a, b in zip(clean, resumed):
        assert (a["af/method"], a["acc/test"], a["gflops/mean"]) == (b["af/method"], b["acc/test"], b["gflops/mean"])
    assert clean[0]["policy_train/loss"] == resumed[0]["policy_train/loss"]


def write_frame_folders(root, n_videos=4, frames=6, size=24):
    rng = np.random.default_rng(0)
    lines = {"train": [], "test": []}
    for split in lines:
        for v in range(n_videos):
            label = v % 2
            folder = root / split / f"v{v}"
            folder.mkdir(parents=True)
            for f in range(frames):
                base = 200 if label else 40
                pixels = np.clip(base + rng.normal(0, 10, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{f + 1:05d}.jpg")
            lines[split].append(f"{split}/v{v},{frames},{label}")
        (root / f"{split}.txt").write_text("\n".join(lines[split]) + "\n")


def test_frame_folders_through_the_task(tmp_path):
    write_frame_folders(tmp_path)
    cfg = compose(["experiment=af_needle", "data=video_list", f"data.root={tmp_path}",
                   f"data.train_list={tmp_path}/train.txt", f"data.test_list={tmp_path}/test.txt",
                   "data.num_classes=2", "data.num_segments=4", "data.size=16", "model.resolutions=[16,8]",
                   "model.policy.input_size=8", "method.pretrain_epochs=1", "method.policy_epochs=1",
                   "method.uniform_k=[1]", "method.frame_exit_thresholds=[0.9]", "progress=false",
                   "method.backbone_cache=false"])
    rows = runner.run_job(cfg, tmp_path / "run")
    methods = {r["af/method"] for r in rows}
    assert "oracle" not in methods  # no ground-truth informative frames for real data
    assert {"learned", "dense_top", "uniform", "frame_exit", "random"} <= methods
    assert all(r["af/num_test_videos"] == 4 for r in rows)
    dense = by_method(rows)[("dense_top", "T=4@16")]
    assert dense["flops/infer_per_sample"] == dense["flops/infer_per_sample_dense"]


@pytest.mark.parametrize("override, key", [
    ("model.resolutions=[32,64]", "model.resolutions"),
    ("method.baselines=[dense_top,everything]", "method.baselines"),
    ("model.backbone=resnet5", "model.backbone"),
    ("model.policy.cell=rnn", "model.policy.cell.*allowed: gru, lstm"),
    ("data=video_list data.name=npy_files data.root=x data.train_list=x data.test_list=x data.num_classes=2",
     "data.name.*allowed: frame_folders, video_files"),
    ("method.policy_epochs=-1", "method.policy_epochs"),
    ("data.informative=40", "informative"),
])
def test_bad_af_config_names_the_key(override, key):
    with pytest.raises((ConfigError, ValueError), match=key):
        validate(compose(["experiment=af_needle", *override.split()]))


def test_missing_video_list_is_a_clear_error(tmp_path):
    cfg = compose(["experiment=af_needle", "data=video_list", f"data.root={tmp_path}",
                   f"data.train_list={tmp_path}/nope.txt", f"data.test_list={tmp_path}/nope.txt",
                   "data.num_classes=2", "progress=false"])
    with pytest.raises(InputError, match="data.train_list"):
        runner.run_job(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # an input error is raised before the run folder is touched


def test_policy_head_action_through_the_task(tmp_path):
    """model.policy_as_backbone=true: stage pretrain/policy runs (and resumes), the learned row's frame counts add
    up and its FLOPs are the per-frame costs times them; baselines stay backbone-only."""
    overrides = [*TINY, "model.policy_as_backbone=true", "method.lam=0.0", "method.backbone_cache=false",
                 "method.baselines=[dense_top]"]
    rows = runner.run_job(compose(overrides), tmp_path / "clean")
    learned, dense = rows[0], by_method(rows)[("dense_top", "T=16@64")]
    typed = validate(compose(overrides))
    costs = build_af_model(typed, needle(typed)).costs()
    assert 0 < costs.policy_head < costs.backbone[-1]
    backbone_frames = [learned[f"frames/backbone{i}"] for i in range(3)]
    assert learned["frames/policy_head"] > 0  # lam=0: the policy uses the head on some frames
    assert learned["frames/policy_head"] + sum(backbone_frames) <= learned["frames/looked"] <= 16
    hand = (learned["frames/looked"] * costs.policy + learned["frames/policy_head"] * costs.policy_head
            + sum(n * c for n, c in zip(backbone_frames, costs.backbone)))
    assert learned["flops/infer_per_sample"] == pytest.approx(hand, rel=1e-9)
    assert "policy_train/usage/policy" in learned
    assert "frames/policy_head" not in dense and dense["flops/infer_per_sample"] == 16 * costs.backbone[0]
    units = [json.loads(line).get("unit") for line in (tmp_path / "clean" / "metrics.jsonl").read_text().splitlines()]
    assert units.count("pretrain/policy") == 1
    assert learned["flops/train_total"] > learned["flops/pretrain"] + 48 * 16 * sum(costs.backbone)

    flag = PreemptAfter(4)  # after pretrain/0, pretrain/1, pretrain/2 and pretrain/policy
    with pytest.raises(Preempted):
        runner.run_job(compose(overrides), tmp_path / "cut", preemption=flag)
    resumed = runner.run_job(compose(overrides), tmp_path / "cut", preemption=PreemptionFlag())
    keys = ("acc/test", "gflops/mean", "frames/policy_head", "flops/train_total")
    assert [resumed[0][k] for k in keys] == [learned[k] for k in keys]


def test_every_library_baseline_is_configurable_and_the_default():
    from adaptive_frames import BASELINES
    from experiments.tasks.af_baselines import BASELINE_SETTINGS

    assert BASELINE_SETTINGS.names() == BASELINES.names()
    assert validate(compose(["experiment=af_needle"])).method.baselines == BASELINES.names()


def test_budget_mode_through_the_task_adapts_lam(tmp_path):
    rows = runner.run_job(compose([*TINY, "method.budget_gflops=0.03", "method.lam=0.1",
                                   "method.baselines=[dense_top]", "method.backbone_cache=false"]), tmp_path)
    learned = rows[0]
    assert learned["af/setting"] == "budget=0.03"
    assert learned["policy_train/lam"] != pytest.approx(0.1)  # dual ascent moved it from its start value
