"""Config schemas of the `adaptive_frames` task: needle and real video data, the model and the method."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from omegaconf import MISSING

from adaptive_frames import BACKBONES
from adaptive_frames.data.needle import NeedleConfig
from adaptive_frames.policy import CELLS, PolicyConfig
from experiments.schema import check as _check
from experiments.schema import schema
from experiments.stream_data import StreamingDataCfg
from experiments.tasks.af_baselines import BASELINE_SETTINGS
from experiments.tasks.af_data import video_list_names


@schema("data", "base_needle")
@dataclass
class NeedleDataCfg(NeedleConfig):
    """adaptive_frames' synthetic needle-frames videos, generated in memory; `seed` null = the run seed."""

    name: str = "needle"
    seed: Optional[int] = None  # type: ignore[assignment]


@schema("data", "base_video_list")
@dataclass
class VideoListDataCfg(StreamingDataCfg):
    """Real videos listed `path,num_frames,label[,label...]` (AR-Net/TSN layout), as frame folders of
    `template` images or as video files decoded with PyAV. In memory (data.in_memory=true, or auto within
    data.memory_budget_gb): clips sampled once (TSN: random offset per segment for train, centre for test), held as
    float32 [N, num_segments, C, size, size]. Streaming (false, or auto over budget): each clip decoded when drawn,
    TSN offsets drawn per (seed, epoch, index), through data.num_workers DataLoader workers; evaluation batches
    are method.eval_batch_size (data.eval_batch_size is unused here)."""

    name: str = "frame_folders"  # any of af_data.video_list_names(): frame_folders | video_files
    root: str = MISSING
    train_list: str = MISSING
    test_list: str = MISSING
    num_classes: int = MISSING
    num_segments: int = 16
    size: int = 64
    channels: int = 3  # 3 = RGB, 1 = grey
    multilabel: bool = False  # multi-hot targets, BCE loss, mAP (ActivityNet/FCVID style)
    template: str = "{:05d}.jpg"
    index_base: int = 1

    def __post_init__(self) -> None:
        _check(self.name in video_list_names(), "data.name", self.name, ", ".join(video_list_names()))
        _check(self.num_classes >= 2, "data.num_classes", self.num_classes, ">= 2")
        _check(self.num_segments >= 1, "data.num_segments", self.num_segments, ">= 1")
        _check(self.size >= 8, "data.size", self.size, ">= 8")
        _check(self.channels in (1, 3), "data.channels", self.channels, "1, 3")
        self.check_streaming()


@schema("model", "base_adaptive_frames")
@dataclass
class AFModelCfg:
    """AR-Net-style model: a policy + one backbone per resolution (adaptive_frames.ModelConfig)."""

    name: str = "adaptive_frames"
    backbone: str = "tiny_cnn"
    backbones: Optional[list[str]] = None  # one per resolution, highest first (AR-Net); null = `backbone` at each
    backbone_width_mult: float = 1.0
    resolutions: list[int] = field(default_factory=lambda: [64, 48, 32])
    skips: list[int] = field(default_factory=lambda: [1, 2, 4])
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    policy_as_backbone: bool = False  # AR-Net's extra action: classify the frame with a head on the policy features
    pretrained: str = "none"  # none | imagenet: torchvision's DEFAULT ImageNet weights for backbones + policy encoder

    def __post_init__(self) -> None:
        _check(self.backbone in BACKBONES, "model.backbone", self.backbone, ", ".join(BACKBONES.names()))
        _check(not self.backbones or (len(self.backbones) == len(self.resolutions)
                                      and all(b in BACKBONES for b in self.backbones)), "model.backbones",
               self.backbones, f"null or one of {', '.join(BACKBONES.names())} per resolution {self.resolutions}")
        _check(self.policy.encoder in BACKBONES, "model.policy.encoder", self.policy.encoder,
               ", ".join(BACKBONES.names()))
        _check(len(self.resolutions) >= 1 and all(r >= 8 for r in self.resolutions), "model.resolutions",
               self.resolutions, "one or more sizes >= 8, highest first")
        _check(list(self.resolutions) == sorted(self.resolutions, reverse=True), "model.resolutions",
               self.resolutions, "strictly decreasing (the first is the expensive one)")
        _check(all(s >= 1 for s in self.skips), "model.skips", self.skips, "integers >= 1")
        _check(self.policy.cell in CELLS, "model.policy.cell", self.policy.cell, ", ".join(CELLS.names()))
        _check(self.pretrained in ("none", "imagenet"), "model.pretrained", self.pretrained, "none, imagenet")
        if self.pretrained == "imagenet":  # every network must be a torchvision model with ImageNet weights
            import torchvision.models

            names = [*(self.backbones or [self.backbone]), self.policy.encoder]
            bare = sorted({n for n in names if n not in torchvision.models.list_models(module=torchvision.models)})
            _check(not bare, "model.pretrained", self.pretrained,
                   f"none while model.backbone(s)/policy.encoder include {bare} (no ImageNet weights)")


@schema("method", "base_adaptive_frames")
@dataclass
class AFMethodCfg:
    """The three AR-Net stages and the baselines evaluated beside the learned policy in the same job."""

    name: str = "adaptive_frames"
    pretrain_epochs: int = 12  # each backbone on all frames at its resolution (lr/batch from optim)
    policy_epochs: int = 12  # joint training, ST Gumbel on frozen backbones (precomputed frame logits)
    finetune_epochs: int = 0  # backbones on the frames the frozen policy assigns them
    policy_lr: float = 3.0e-3
    tau0: float = 5.0
    gamma: float = 0.3  # tau = tau0 * exp(-gamma * epoch)
    lam: float = 0.2  # weight of the efficiency term (start value in budget mode)
    balance: float = 0.0
    budget_gflops: float = 0.0  # > 0: adapt lam so mean GFLOPs/video meets this target
    budget_lr: float = 0.05
    eval_batch_size: int = 128
    baselines: list[str] = field(default_factory=BASELINE_SETTINGS.names)  # every registered baseline
    uniform_k: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    frame_exit_thresholds: list[float] = field(default_factory=lambda: [0.5, 0.9, 0.99])
    backbone_cache: bool = True  # reuse pretrained backbones across jobs with the same data/model/pretrain/seed

    def __post_init__(self) -> None:
        for key in ("pretrain_epochs", "policy_epochs", "finetune_epochs"):
            _check(getattr(self, key) >= 0, f"method.{key}", getattr(self, key), ">= 0")
        _check(self.policy_lr > 0, "method.policy_lr", self.policy_lr, "> 0")
        _check(self.tau0 > 0 and self.gamma >= 0, "method.tau0/gamma", (self.tau0, self.gamma), "tau0 > 0, gamma >= 0")
        _check(self.lam >= 0 and self.balance >= 0, "method.lam/balance", (self.lam, self.balance), ">= 0")
        _check(self.budget_gflops >= 0, "method.budget_gflops", self.budget_gflops, ">= 0 (0 = off)")
        _check(self.eval_batch_size >= 1, "method.eval_batch_size", self.eval_batch_size, ">= 1")
        bad = [b for b in self.baselines if b not in BASELINE_SETTINGS]
        _check(not bad, "method.baselines", bad, ", ".join(BASELINE_SETTINGS.names()))
        _check(all(k >= 1 for k in self.uniform_k), "method.uniform_k", self.uniform_k, "integers >= 1")
        _check(all(0 < t <= 1 for t in self.frame_exit_thresholds), "method.frame_exit_thresholds",
               self.frame_exit_thresholds, "values in (0, 1]")

