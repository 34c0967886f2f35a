"""The three AR-Net stages as plain loops: pretrain backbones per resolution (and, with the policy-head action,
the policy encoder + classification head as a frame classifier), joint policy training, fine-tune with the policy
frozen; plus evaluation. Each takes model/data/optimizer/epochs and returns per-epoch metrics;
`start_epoch` (and a passed-in BudgetController) let a caller resume a stage from its checkpointed state.

A loader yields (clips [B, T, C, H, W], labels [B] or multi-hot [B, K], index [B]); `ClipLoader` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .flops import summarize_flops
from .gumbel import temperature
from .inference import VideoResult, resize
from .losses import BudgetController, efficiency_term, usage_balance
from .metrics import accuracy
from .model import AdaptiveFrameModel

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Loader = Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def _acc(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return accuracy(logits, labels) if labels.dim() == 1 else float("nan")


@dataclass(frozen=True)
class Compute:
    """Where and how a stage computes, chosen by the caller (who has put the model on `device`): batches are
    copied there (non_blocking), forwards run under `autocast()` with losses in fp32, and `scaler` (an fp16
    GradScaler) scales the backward. The default is the plain CPU fp32 loop."""

    device: torch.device | str | None = None
    autocast: Callable[[], AbstractContextManager] | None = None
    scaler: torch.amp.GradScaler | None = None
    # data parallel (the caller owns the process group): called after backward, before the optimizer step, to
    # average the optimizer's gradients over ranks (each rank's loader yields its shard of the global batch)
    grad_sync: Callable[[torch.optim.Optimizer], None] | None = None

    def to(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.device is None:
            return tensors
        return tuple(t.to(self.device, non_blocking=True) for t in tensors)

    def context(self) -> AbstractContextManager:
        return self.autocast() if self.autocast is not None else nullcontext()

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """zero_grad, backward, optimizer step (scaled, and skipped on inf/nan gradients, with a GradScaler).
        A non-finite loss on any rank raises FloatingPointError on every rank, before a diverged model is
        checkpointed as if healthy."""
        if not _finite_on_every_rank(loss.detach()):
            raise FloatingPointError(f"training loss is not finite (this rank's: {float(loss.detach())}) on at "
                                     "least one rank; lower the learning rate or check the data")
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            if self.grad_sync is not None:
                self.grad_sync(optimizer)
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        if self.grad_sync is not None:
            self.grad_sync(optimizer)  # scaled grads: averaging commutes with the unscale
        self.scaler.step(optimizer)
        self.scaler.update()


def _finite_on_every_rank(loss: torch.Tensor) -> bool:
    """One isfinite check, and under torch.distributed one MAX all-reduce so every rank agrees."""
    bad = (~torch.isfinite(loss)).any().to(torch.int64).reshape(1)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        bad = bad.cpu()
        torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
    return not bool(bad.item())


def _fp32(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def fit_epochs(
    logits_of: Callable[[torch.Tensor], torch.Tensor], loader: Loader, optimizer: torch.optim.Optimizer, epochs: int,
    loss_fn: LossFn = F.cross_entropy, start_epoch: int = 0, compute: Compute = Compute(),
) -> list[dict[str, float]]:
    """The supervised loop the stages share: `logits_of(clips [B, T, C, H, W]) -> video logits [B, K]`, one
    optimizer step per batch; per epoch {"epoch", "loss", "acc"} averaged over videos (acc NaN for multi-hot)."""
    history = []
    for epoch in range(start_epoch, epochs):
        tot_loss = tot_acc = n = 0.0
        for clips, labels, _ in loader:
            clips, labels = compute.to(clips, labels)
            with compute.context():
                logits = _fp32(logits_of(clips))
                loss = loss_fn(logits, labels)
            compute.step(loss, optimizer)
            b = clips.shape[0]
            tot_loss += float(loss.detach()) * b
            tot_acc += _acc(logits.detach(), labels) * b
            n += b
        history.append({"epoch": epoch, "loss": tot_loss / n, "acc": tot_acc / n})
    return history


def pretrain_backbone(
    backbone: nn.Module, resolution: int, loader: Loader, optimizer: torch.optim.Optimizer, epochs: int,
    loss_fn: LossFn = F.cross_entropy, start_epoch: int = 0, compute: Compute = Compute(),
) -> list[dict[str, float]]:
    """Train one backbone on every frame at `resolution`; video logits = mean of frame logits."""
    backbone.train()

    def logits_of(clips: torch.Tensor) -> torch.Tensor:
        b, t = clips.shape[:2]
        return backbone(resize(clips.flatten(0, 1), resolution)).view(b, t, -1).mean(dim=1)

    return fit_epochs(logits_of, loader, optimizer, epochs, loss_fn, start_epoch, compute)


def pretrain_policy_head(
    model: AdaptiveFrameModel, loader: Loader, optimizer: torch.optim.Optimizer, epochs: int,
    loss_fn: LossFn = F.cross_entropy, start_epoch: int = 0, compute: Compute = Compute(),
) -> list[dict[str, float]]:
    """Train the policy encoder + classification head (ModelConfig.policy_as_backbone) as a frame classifier on
    the policy's low-res copy of every frame; video logits = mean of frame logits. Pass the encoder's and the
    classifier's parameters in `optimizer` (the recurrent cell and action head get no gradient here)."""
    if model.policy.classifier is None:
        raise ValueError("pretrain_policy_head: the model has no policy head (ModelConfig.policy_as_backbone=False)")
    model.policy.train()
    return fit_epochs(lambda clips: policy_head_logits(model, clips), loader, optimizer, epochs, loss_fn, start_epoch,
                      compute)


def policy_head_logits(model: AdaptiveFrameModel, clips: torch.Tensor) -> torch.Tensor:
    """clips [B, T, C, H, W] -> video logits [B, K]: the policy head on every frame's low-res copy, averaged."""
    b, t = clips.shape[:2]
    feats = model.policy.encode(model.lowres(clips).flatten(0, 1))
    return model.policy.classify(feats).view(b, t, -1).mean(dim=1)


@dataclass
class PolicyTrainConfig:
    epochs: int = 20
    tau0: float = 5.0
    gamma: float = 0.045  # per epoch; AR-Net's value for ~100 epochs, raise it for short runs
    lam: float = 0.1  # weight of the efficiency term (ignored in budget mode, where it starts here and adapts)
    balance: float = 0.0  # weight of the usage-balance term
    budget_gflops: float = 0.0  # > 0: budget mode, target mean GFLOPs per video
    budget_lr: float = 0.05

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.lam < 0 or self.balance < 0 or self.budget_gflops < 0:
            raise ValueError(f"PolicyTrainConfig: epochs, lam, balance, budget_gflops must be >= 0, got {self}")


@torch.no_grad()
def precompute(model: AdaptiveFrameModel, clips: torch.Tensor, batch_size: int = 64,
               compute: Compute = Compute()) -> dict[str, torch.Tensor]:
    """With frozen backbones, per-frame logits [N, T, R, K] and low-res copies [N, T, C, s, s] never change:
    compute them once so joint training only runs the policy (on `compute.device`; logits in fp32)."""
    model.eval()
    logits, low = [], []
    for i in range(0, len(clips), batch_size):
        (x,) = compute.to(clips[i : i + batch_size])
        with compute.context():
            logits.append(_fp32(model.frame_logits(x)))
        low.append(model.lowres(x))
    return {"frame_logits": torch.cat(logits), "low": torch.cat(low)}


@torch.no_grad()
def frozen_inputs(model: AdaptiveFrameModel, clips: torch.Tensor, compute: Compute = Compute()
                  ) -> dict[str, torch.Tensor]:
    """`precompute` for one batch already on the device (backbones must be in eval mode): frame_logits
    [B, T, R, K] in fp32 and low [B, T, C, s, s]."""
    with compute.context():
        logits = _fp32(model.frame_logits(clips))
    return {"frame_logits": logits, "low": model.lowres(clips)}


def train_policy(
    model: AdaptiveFrameModel, loader: Loader, optimizer: torch.optim.Optimizer, cfg: PolicyTrainConfig,
    loss_fn: LossFn = F.cross_entropy, cache: dict[str, torch.Tensor] | None = None,
    budget: BudgetController | None = None, start_epoch: int = 0, generator: torch.Generator | None = None,
    compute: Compute = Compute(), frozen_backbones: bool = False, shard: tuple[int, int] = (0, 1),
    stats_sum: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> list[dict[str, float]]:
    """Joint training with ST Gumbel-softmax, tau = tau0 * exp(-gamma * epoch).

    Data parallel: `loader` yields rank's shard of every global batch, `shard` = (rank, world) and `generator`
    seeded alike on every rank, so the ranks draw one process's Gumbel noise, and `stats_sum` (a differentiable
    sum over the ranks) makes the usage-balance term and the budget controller's FLOPs the global batch's: N ranks
    train what one process does. The epoch rows are then the whole epoch's too (every rank's shard).
    Backbones are trained too if their parameters are in `optimizer`; pass `cache` (from `precompute`) to train
    only the policy on frozen backbones. Without a cache, `frozen_backbones=True` computes the same inputs per
    batch (streaming data, whose clips differ every epoch, so a cache would not hold): backbones in eval mode,
    no gradient. The loader's index is only read with a cache. Budget mode (cfg.budget_gflops > 0) adapts lam
    by dual ascent.
    """
    if budget is None and cfg.budget_gflops > 0:
        budget = BudgetController(target_flops=cfg.budget_gflops * 1e9, lam=cfg.lam, lr=cfg.budget_lr)
    top = model.costs().top
    model.train()
    if cache is not None or frozen_backbones:
        model.backbones.eval()
    history = []
    for epoch in range(start_epoch, cfg.epochs):
        tau = temperature(epoch, cfg.tau0, cfg.gamma)
        sums: dict[str, float] = {"loss": 0.0, "acc": 0.0, "flops": 0.0, "lam": 0.0}
        usage = torch.zeros(model.space.num_actions, device=compute.device)
        looked_total, n = 0.0, 0
        for clips, labels, idx in loader:
            clips, labels = compute.to(clips, labels)
            if cache is not None:
                extra = {"frame_logits": cache["frame_logits"][idx], "low": cache["low"][idx]}
            else:
                extra = frozen_inputs(model, clips, compute) if frozen_backbones else {}
            with compute.context():
                out = model.forward_train(clips, tau, generator=generator, shard=shard, **extra)
                lam = budget.lam if budget is not None else cfg.lam
                loss = loss_fn(_fp32(out.logits), labels) + lam * efficiency_term(out.flops, clips.shape[1], top)
                if cfg.balance > 0:
                    loss = loss + cfg.balance * usage_balance(out.decisions, out.looked, stats_sum)
            compute.step(loss, optimizer)
            mean_flops = float(out.flops.detach().mean())
            if stats_sum is not None:  # the global batch's mean: every rank's controller takes the same step
                total = stats_sum(torch.stack([out.flops.detach().sum(), out.flops.new_tensor(len(out.flops))]))
                mean_flops = float(total[0] / total[1])
            if budget is not None:
                budget.update(mean_flops)
            b = clips.shape[0]
            n += b
            sums["loss"] += float(loss.detach()) * b
            sums["acc"] += _acc(out.logits.detach(), labels) * b
            sums["flops"] += mean_flops * b
            sums["lam"] += lam * b
            usage += out.decisions.detach().sum(dim=(0, 1))
            looked_total += float(out.looked.detach().sum())
        if stats_sum is not None:  # the epoch's figures over every rank's shard (the same row on every rank)
            total = stats_sum(torch.tensor([*sums.values(), n, looked_total], dtype=torch.float64,
                                           device=usage.device))
            sums = dict(zip(sums, total[:len(sums)].tolist()))
            n, looked_total = int(total[len(sums)]), float(total[len(sums) + 1])
            usage = stats_sum(usage)
        row = {"epoch": epoch, "tau": tau, **{k: v / n for k, v in sums.items()}}
        row["gflops"] = row.pop("flops") / 1e9
        for name, u in zip(model.space.names(), usage / max(looked_total, 1.0)):
            row[f"usage/{name}"] = float(u)
        history.append(row)
    return history


def finetune(
    model: AdaptiveFrameModel, loader: Loader, optimizer: torch.optim.Optimizer, epochs: int,
    loss_fn: LossFn = F.cross_entropy, start_epoch: int = 0, compute: Compute = Compute(),
) -> list[dict[str, float]]:
    """Train the backbones on the frames the frozen policy assigns them (argmax decisions, no Gumbel noise)."""
    for p in model.policy.parameters():
        p.requires_grad_(False)
    model.train()
    model.policy.eval()
    try:
        return fit_epochs(lambda clips: model.forward_train(clips, tau=1.0, deterministic=True).logits, loader,
                          optimizer, epochs, loss_fn, start_epoch, compute)
    finally:
        for p in model.policy.parameters():
            p.requires_grad_(True)


def evaluate(
    run: Callable[[torch.Tensor, torch.Tensor], VideoResult], loader: Loader, dense_flops: float,
    metric: Callable[[torch.Tensor, torch.Tensor], float] = accuracy,
) -> dict[str, float]:
    """`run(clips, index) -> VideoResult` over a loader: the metric plus per-video FLOPs statistics.

    frames/looked: mean frames the policy ran on; frames/backbone<i>: mean frames backbone i ran on;
    frames/policy_head (only for results with a policy-head action): mean frames the policy head classified."""
    logits, labels, flops, looked, per_res, head = [], [], [], [], [], []
    for clips, y, idx in loader:
        r = run(clips, idx)
        logits.append(r.logits)
        labels.append(y)
        flops.append(r.flops)
        looked.append(r.looked.double())
        per_res.append(r.per_res.double())
        if r.head is not None:
            head.append(r.head.double())
    out = {"metric": metric(torch.cat(logits), torch.cat(labels)), **summarize_flops(torch.cat(flops), dense_flops)}
    out["frames/looked"] = float(torch.cat(looked).mean())
    for i, v in enumerate(torch.cat(per_res).mean(dim=0)):
        out[f"frames/backbone{i}"] = float(v)
    if head:
        out["frames/policy_head"] = float(torch.cat(head).mean())
    return out
