"""Training of the adaptive-frames task: every stage in order through a `StageRunner`, with its counted FLOPs.

FLOPs of a stage = counted forward + backward FLOPs of one step per batch shape (meter.flops) times the steps.
Streaming data (`data.stream`) trains from full batches only (drop_last) and, its clips changing every epoch, runs
the frozen backbones per batch in the policy stage instead of once (counted per epoch).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch
from torch import nn

from adaptive_frames import AdaptiveFrameModel, BudgetController
from adaptive_frames.inference import FRAMES_PER_CALL, resize
from adaptive_frames.stages import (
    Compute,
    PolicyTrainConfig,
    finetune,
    frozen_inputs,
    policy_head_logits,
    precompute,
    pretrain_backbone,
    pretrain_policy_head,
    train_policy,
)
from experiments import distributed
from experiments.checkpoint import load_checkpoint, save_checkpoint
from experiments.context import RunContext
from experiments.schema import ConfigError
from experiments.tasks.af_data import VideoData
from experiments.tasks.af_stages import StageRunner, backbone_cache_key
from experiments.tasks.af_stream import train_loader
from meter.flops import count_flops
from sparse_moe.losses import all_reduce_sum

log = logging.getLogger(__name__)


class _Call(nn.Module):
    """A closure over `model` as a module, so meter.flops can count a stage's step (forward and backward)."""

    def __init__(self, model: nn.Module, fn) -> None:
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, *inputs):
        return self.fn(self.model, *inputs)


def epoch_flops(module: nn.Module, inputs: tuple[torch.Tensor, ...], labels: torch.Tensor, batch: int,
                loss_fn, drop_last: bool = False) -> int:
    """Counted forward + backward FLOPs of one pass over `inputs` [N, ...] in batches of `batch` (the last one
    short, or dropped): one step counted per batch shape on a copy (meter.flops.count_flops), times the steps."""
    n, total = len(labels), 0
    device = next(module.parameters()).device  # counted where the model is
    for b, steps in ((batch, n // batch), (0 if drop_last else n % batch, 1)):
        if b and steps:
            count = count_flops(module, tuple(x[:b].to(device) for x in inputs),
                                lambda out, b=b: loss_fn(out, labels[:b].to(device)))
            total += steps * count.total
    return total


def compute_of(ctx: RunContext, model: nn.Module) -> Compute:
    """The stages' device, autocast and fp16 GradScaler from the run's Runtime (the model must be on its device),
    and under torch.distributed the per-step sync: gradients averaged over the ranks, `model`'s buffers (BN
    statistics) taken from rank 0, so every rank holds the state rank 0 checkpoints."""
    rt = ctx.runtime
    sync = None
    if distributed.world()[1] > 1:
        def sync(optimizer: torch.optim.Optimizer) -> None:
            distributed.average_optimizer_gradients(optimizer)
            distributed.broadcast_buffers(model)
    return Compute(rt.device, rt.autocast, rt.grad_scaler(), grad_sync=sync)


def _stage_epoch(fn, loader, **kwargs):
    """Adapt a stage function (which loops over epochs) to one epoch with a reproducible data order."""
    def one_epoch(optimizer, epoch, budget):
        loader.passes = epoch  # the order depends on (seed, pass): resume reproduces it
        extra = {"budget": budget} if budget is not None else {}
        return fn(loader=loader, optimizer=optimizer, start_epoch=epoch, epochs=epoch + 1, **kwargs, **extra)[-1]
    return one_epoch


def _pretrain_backbones(cfg, runner: StageRunner, model: AdaptiveFrameModel, data: VideoData) -> tuple[str, int]:
    """Stages pretrain/<i>, or the cached backbones. Returns (source: trained | cache:<key>, counted FLOPs of the
    recipe's pretraining, whether or not this job ran it)."""
    m, x, y, bs = cfg.method, data.train_clips, data.train_labels, cfg.optim.batch_size
    loss_fn, _ = data.loss_and_metric()
    cache = Path(cfg.paths["output_root"]) / "cache" / "af_backbones" / f"{backbone_cache_key(cfg)}.pt"
    stages = [f"pretrain/{i}" for i in range(model.space.num_resolutions)]
    source = "trained"
    if m.backbone_cache and cache.exists() and not any(runner.started(s) for s in stages):
        model.backbones.load_state_dict(load_checkpoint(cache)["backbones"])
        runner.state["done"].extend(stages)
        source = f"cache:{cache.stem}"
        log.info("adaptive_frames: backbones from %s", cache)
    flops = 0
    for i, res in enumerate(model.space.resolutions):
        loader = train_loader(data, bs, cfg.seed * 7 + 1 + i)
        compute = compute_of(runner.ctx, model)
        fn = _stage_epoch(lambda bb=model.backbones[i], r=res, **kw: pretrain_backbone(bb, r, loss_fn=loss_fn, **kw),
                          loader, compute=compute)
        runner.run(stages[i], m.pretrain_epochs, model.backbones[i].parameters(), cfg.optim.lr, fn,
                   scaler=compute.scaler)
        step = _Call(model.backbones[i], lambda bb, c, r=res: bb(resize(c.flatten(0, 1), r)).view(*c.shape[:2], -1)
                     .mean(dim=1))
        flops += m.pretrain_epochs * epoch_flops(step, (x,), y, bs, loss_fn, drop_last=data.stream is not None)
    if source == "trained" and m.backbone_cache and distributed.is_main() and not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(cache, {"backbones": model.backbones.state_dict()})
    return source, flops


def _pretrain_policy_head(cfg, runner: StageRunner, model: AdaptiveFrameModel, data: VideoData, loss_fn) -> int:
    """Stage pretrain/policy (model.policy_as_backbone only): the policy encoder + classification head as a frame
    classifier. Returns its counted training FLOPs."""
    x, y, bs, epochs = data.train_clips, data.train_labels, cfg.optim.batch_size, cfg.method.pretrain_epochs
    loader = train_loader(data, bs, cfg.seed * 7 + 1 + model.space.num_resolutions)
    compute = compute_of(runner.ctx, model)
    fn = _stage_epoch(lambda **kw: pretrain_policy_head(model, loss_fn=loss_fn, **kw), loader, compute=compute)
    params = [*model.policy.encoder.parameters(), *model.policy.classifier.parameters()]
    runner.run("pretrain/policy", epochs, params, cfg.optim.lr, fn, scaler=compute.scaler)
    return epochs * epoch_flops(_Call(model, policy_head_logits), (x,), y, bs, loss_fn,
                                drop_last=data.stream is not None)


def train(cfg, ctx: RunContext, model: AdaptiveFrameModel, data: VideoData) -> dict:
    """All stages. Returns pretrain_source (trained | cache:<key>), counted FLOPs of pretraining and of the
    policy/fine-tune stages (the recipe's compute, whether or not this job ran the cached part), history.
    flops_pretrain is the backbones' pretraining (what every baseline needs too); pretrain/policy, which only
    the learned policy needs, counts towards flops_train only."""
    loss_fn, _ = data.loss_and_metric()
    if distributed.world()[1] > 1 and data.stream is not None:
        raise ConfigError(f"adaptive frames on {distributed.world()[1]} ranks with streamed videos (data.stream set);"
                         " allowed under DDP: in-memory clips (streamed videos: one process)")
    if cfg.ddp.sync_bn:
        distributed.convert_sync_bn(model)  # backbones' and policy's BN statistics over the global batch
    runner = StageRunner(ctx, model)
    home = next(model.parameters()).device
    model.to(ctx.runtime.device)  # every stage trains on the run's device; evaluation gets the model back home
    try:
        return _train_stages(cfg, ctx, model, data, runner, loss_fn)
    finally:
        model.to(home)


def _train_stages(cfg, ctx: RunContext, model: AdaptiveFrameModel, data: VideoData, runner: StageRunner,
                  loss_fn) -> dict:
    m, n, t = cfg.method, len(data.train_clips), data.num_frames
    x, y, bs = data.train_clips, data.train_labels, cfg.optim.batch_size
    streaming = data.stream is not None
    compute = compute_of(ctx, model)
    source, flops_pretrain = _pretrain_backbones(cfg, runner, model, data)

    if streaming:  # clips differ every epoch: the frozen backbones run per batch (counted below), no cache
        cached = None
        flops = 0
    else:
        with runner.measure():
            cached = precompute(model, x, batch_size=max(1, FRAMES_PER_CALL // t), compute=compute)  # frozen: once
        flops = n * t * sum(model.costs().backbone)  # precompute: every backbone on every frame, forward only
    if model.space.policy_head:
        flops += _pretrain_policy_head(cfg, runner, model, data, loss_fn)
    pcfg = PolicyTrainConfig(epochs=m.policy_epochs, tau0=m.tau0, gamma=m.gamma, lam=m.lam, balance=m.balance,
                             budget_gflops=m.budget_gflops, budget_lr=m.budget_lr)
    budget = (BudgetController(target_flops=m.budget_gflops * 1e9, lam=m.lam, lr=m.budget_lr)
              if m.budget_gflops > 0 else None)
    loader = train_loader(data, bs, cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)

    def policy_epoch(optimizer, epoch, budget):
        loader.passes = epoch
        gen.manual_seed(cfg.seed * 100_003 + epoch)  # Gumbel noise reproducible per epoch (resume)
        return train_policy(model, loader, optimizer, dataclasses.replace(pcfg, epochs=epoch + 1), loss_fn=loss_fn,
                            cache=cached, budget=budget, start_epoch=epoch, generator=gen, compute=compute,
                            frozen_backbones=streaming, shard=distributed.world(),
                            stats_sum=all_reduce_sum if distributed.world()[1] > 1 else None)[-1]

    runner.run("policy", m.policy_epochs, model.policy.parameters(), m.policy_lr, policy_epoch, budget,
               scaler=compute.scaler)
    # Counted with argmax decisions (the Gumbel noise is elementwise: same matmuls, and no global RNG consumed).
    step = _Call(model, lambda mod, c, fl, low: mod.forward_train(c, 1.0, frame_logits=fl, low=low,
                                                                  deterministic=True).logits)
    if streaming:  # the frozen inputs of one batch stand for every batch (same shapes); the backbones run per epoch
        clips = x[:bs].to(ctx.runtime.device)
        model.backbones.eval()
        inputs = (clips, *frozen_inputs(model, clips, compute).values())
        flops += m.policy_epochs * (n // bs) * bs * t * sum(model.costs().backbone)
    else:
        inputs = (x, cached["frame_logits"], cached["low"])
    flops += m.policy_epochs * epoch_flops(step, inputs, y, bs, loss_fn, drop_last=streaming)
    if m.finetune_epochs > 0:
        loader = train_loader(data, bs, cfg.seed + 1)
        compute = compute_of(ctx, model)  # a loss scale of its own, as the stage has its own optimizer
        fn = _stage_epoch(lambda **kw: finetune(model, loss_fn=loss_fn, **kw), loader, compute=compute)
        runner.run("finetune", m.finetune_epochs, model.backbones.parameters(), cfg.optim.lr, fn,
                   scaler=compute.scaler)
        step = _Call(model, lambda mod, c: mod.forward_train(c, 1.0, deterministic=True).logits)
        flops += m.finetune_epochs * epoch_flops(step, (x,), y, bs, loss_fn, drop_last=streaming)
    return {"pretrain_source": source, "flops_pretrain": flops_pretrain, "flops_train": flops_pretrain + flops,
            "history": runner.state["history"], "measurement": runner.measurement}
