"""The branch registries and what their entries are.

A baseline is `fn(imp: lth.imp.IMP, level: int) -> Start`; a retraining mode is a `RetrainMode`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from lth.masks import Mask
from meter.registry import Registry

RETRAIN: Registry = Registry("retraining mode")
BASELINES: Registry = Registry("IMP baseline")


@dataclass(frozen=True)
class RetrainMode:
    rewind_weights: bool  # start from the snapshot's weights (else from the previous level's trained weights)
    fixed_lr: bool  # hold the LR at the schedule's final value (fine-tuning) instead of replaying it from step k


@dataclass
class Start:
    """How a unit starts: its model (weights set, mask not yet applied), its mask and optimizer state."""

    model: nn.Module
    mask: Mask
    optimizer_state: dict | None = None  # the rewound optimizer state, or None for a fresh optimizer
