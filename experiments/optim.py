"""Optimizers and learning-rate schedules by name."""

from __future__ import annotations

import math

import torch

from meter.registry import Registry

OPTIMIZERS: Registry = Registry("optimizer")
SCHEDULES: Registry = Registry("lr schedule")


@OPTIMIZERS.register("sgd")
def sgd(params, cfg) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("adam")
def adam(params, cfg) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("adamw")
def adamw(params, cfg) -> torch.optim.Optimizer:
    """Decoupled weight decay with GPT-2/nanoGPT's betas (0.9, 0.95), on every parameter."""
    return torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)


@SCHEDULES.register("constant")
def constant(step: int, total: int, cfg) -> float:
    return 1.0


@SCHEDULES.register("cosine")
def cosine(step: int, total: int, cfg) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


@SCHEDULES.register("multistep")
def multistep(step: int, total: int, cfg) -> float:
    """gamma ** (number of milestones passed); milestones are fractions of training (0.5 = halfway)."""
    return cfg.gamma ** sum(step >= round(m * total) for m in cfg.milestones)


def build_optimizer(model: torch.nn.Module, cfg) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(cfg.name)(model.parameters(), cfg)


def lr_factor(cfg, step: int, total: int) -> float:
    """Multiplier of the base LR at `step`; a pure function of the step, so resuming at step k replays it exactly."""
    warmup = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    return warmup * SCHEDULES.get(cfg.schedule)(step, total, cfg)
