"""Adaptive frame selection (AR-Net, Meng et al. ECCV 2020) as a Hydra task: one policy per job, every baseline
beside it on the same backbones, one row per evaluated method/setting.

Stages, each resumable at epoch boundaries from `<job>/checkpoint.pt`:
  pretrain/<i>  backbone i on all frames at resolution i        (Adam, optim.lr, optim.batch_size)
  pretrain/policy  policy encoder + classification head on the policy's low-res frames (only with
                model.policy_as_backbone: the policy-head action; same optimiser settings, not cached)
  policy        joint ST Gumbel training on frozen backbones     (method.policy_lr; per-frame logits precomputed)
  finetune      backbones on the frames the frozen policy sends  (optional, method.finetune_epochs)
Pretrained backbones are cached across jobs (`<output_root>/cache/af_backbones/<key>.pt`, keyed by everything
that determines them), so a sweep over lam/budget pretrains once per seed; a row says which it was.

Each row's energy/* and time/* are the *evaluation* window of that method over the test set (inference energy,
what the efficiency claim is about), with `energy/per_video_j` beside it; the learned row also carries the
training window as `train/*`. FLOPs per video are counted at run time (FLOPs = 2 x MAC; GMACs beside them);
training FLOPs are counted per stage step (forward + backward, meter.flops) times the steps run.

Modules: af_data (video data, AF_DATA), af_stages (resumable stage runner, backbone cache), af_train (the stages
and their FLOPs), af_baselines (evaluation, BASELINE_SETTINGS); this file builds the model and the rows.
"""

from __future__ import annotations

import dataclasses

import torch

from adaptive_frames import AdaptiveFrameModel, ModelConfig
from adaptive_frames.policy import PolicyConfig
from experiments import debug
from experiments.context import RunContext
from experiments.stream_data import skipped_row
from experiments.tasks.af_baselines import evaluate_methods
from experiments.tasks.af_data import AF_DATA, VideoData
from experiments.tasks.af_train import train
from experiments.tasks.registry import TASKS
from experiments.units import run_unit

FLOPS_CONVENTION = "2*MAC (torch FlopCounterMode); inference per video, counted at run time"
TRAIN_KEYS = ("energy/joules", "energy/method", "carbon/g_co2e", "time/wall_s")  # of the training window


def build_af_model(cfg, data: VideoData) -> AdaptiveFrameModel:
    m = cfg.model
    policy = PolicyConfig(**{f.name: getattr(m.policy, f.name) for f in dataclasses.fields(PolicyConfig)})
    model = AdaptiveFrameModel(ModelConfig(
        num_classes=data.num_classes, in_channels=data.channels, backbone=m.backbone,
        backbones=list(m.backbones) if m.backbones else None,
        backbone_width_mult=m.backbone_width_mult, resolutions=list(m.resolutions), skips=list(m.skips),
        policy=policy, policy_as_backbone=m.policy_as_backbone))
    if m.pretrained == "imagenet":
        load_imagenet(model, list(m.backbones or [m.backbone] * len(m.resolutions)), m.policy.encoder)
    return model


def load_imagenet(model: AdaptiveFrameModel, backbones: list[str], encoder: str) -> None:
    """AR-Net's start: torchvision's DEFAULT ImageNet weights in every backbone and the policy encoder (their
    classifier heads, of another class count, stay fresh); fetched through torch.hub's cache."""
    import torchvision.models

    from experiments.pretrained_weights import apply_state_dict, torchvision_state_dict

    nets = [*zip(model.backbones, backbones), (model.policy.encoder, encoder)]
    for net, name in nets:
        weights = f"{torchvision.models.get_model_weights(name).__name__}.DEFAULT"
        apply_state_dict(net, torchvision_state_dict(weights), f"model.pretrained=imagenet ({name}: {weights})")


@TASKS.register("adaptive_frames")
def run_adaptive_frames(cfg, ctx: RunContext) -> list[dict]:
    # the policy routes frames per video (shapes vary per batch): compile=true compiles nothing here, and says so
    ctx.runtime = dataclasses.replace(ctx.runtime, compiles="none (adaptive frames: per-video routing)")
    """One policy per job and the baselines beside it: their rows, stored in `<job>/result.json`."""
    return run_unit(ctx.job_dir, ctx, lambda: train_and_evaluate(cfg, ctx))


def train_and_evaluate(cfg, ctx: RunContext) -> list[dict]:
    data = debug.overfit(cfg, AF_DATA.get(cfg.data.name)(cfg))
    torch.manual_seed(cfg.seed)
    model = build_af_model(cfg, data)
    trained = train(cfg, ctx, model, data)
    results = evaluate_methods(cfg, ctx, model, data)
    params = sum(p.numel() for p in model.parameters())
    n_test = len(data.test_clips)
    dense = model.dense_flops(data.num_frames)
    rows = []
    for method, setting, metrics, window in results:
        row = {
            "af/method": method, "af/setting": setting,
            "acc/test": metrics["metric"] if not data.multilabel else None,
            "map/test": metrics["metric"] if data.multilabel else None,
            # the learned policy needs every stage; a baseline only the pretrained backbones it runs
            "flops/train_total": trained["flops_train"] if method == "learned" else trained["flops_pretrain"],
            "flops/pretrain": trained["flops_pretrain"],
            "flops/infer_per_sample": metrics["gflops/mean"] * 1e9,
            "flops/infer_per_sample_dense": float(dense),
            "flops/convention": FLOPS_CONVENTION,
            **{k: v for k, v in metrics.items() if k != "metric"},
            "params/total": params, "params/nonzero": params,
            "af/pretrain_source": trained["pretrain_source"],
            "af/num_test_videos": n_test,
            **window.row(),
            "energy/per_video_j": window.joules / n_test,
            **skipped_row(data.stream),  # data.skip_bad: unreadable videos left out
        }
        if method == "learned":
            row.update({f"train/{k.split('/', 1)[1]}": v for k, v in trained["measurement"].row().items()
                        if k in TRAIN_KEYS})
            last = (trained["history"].get("policy") or [{}])[-1]
            row.update({f"policy_train/{k}": v for k, v in last.items() if isinstance(v, (int, float))})
        rows.append(row)
    return rows
