"""The IMP schedule with its baselines, for any model and any training function (`run_imp`).

    rows = run_imp(lambda: MyNet(), train, levels=3)   # train(model, unit) -> dict of metrics

Level 0 trains the dense network (the training function calls `unit.snapshot(step, optimizer)` at
`unit.rewind_step`). Each later level prunes the previous level's trained ticket, starts the ticket by the retraining
mode (`RETRAIN`: weight_rewind, lr_rewind, finetune) and then each baseline (`BASELINES`: random_reinit,
random_prune, one_shot) from the same level's mask; every unit is one call of the training function, which must
leave the trained weights in `model` and call `unit.apply()` after each optimizer step.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from lth.branches import BASELINES, RETRAIN, Start
from lth.masks import Mask, density, mask_applier
from lth.pretrained import reinit_like
from lth.pruning import PruneRates
from lth.ticket import LotteryTicket


@dataclass
class Unit:
    """One training run of the schedule: `model` starts with `mask` applied, at `start_step`."""

    level: int
    kind: str  # "ticket" or a baseline name
    mask: Mask
    start_step: int
    ticket: LotteryTicket
    optimizer_state: dict | None = None  # start the optimizer from this state (the rewound one) when given
    fixed_lr: bool = False  # fine-tuning: hold the LR at the schedule's final value
    _apply: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def rewind_step(self) -> int:
        return self.ticket.rewind_step

    def snapshot(self, step: int, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Level 0: record the rewind point (weights and optimizer state at `step`)."""
        if self.level == 0:
            self.ticket.snapshot(step, optimizer)

    def apply(self) -> None:
        """Zero this unit's pruned weights; call after every optimizer step."""
        self._apply()


class IMP:
    """The state a schedule's branches read: the ticket, the model factory, the seeds and the dense result."""

    def __init__(self, model_fn: Callable[[], nn.Module], *, model: nn.Module | None = None, seed: int = 0,
                 retrain: str = "weight_rewind", optimizer_state: str = "fresh", random_prune_scope: str = "layerwise",
                 **ticket_kwargs) -> None:
        self.mode = RETRAIN.get(retrain)
        if optimizer_state not in ("fresh", "rewound"):
            raise ValueError(f"optimizer_state={optimizer_state!r} is not one of fresh, rewound")
        self.model_fn, self.seed, self.retrain = model_fn, seed, retrain
        self.optimizer_state, self.random_prune_scope = optimizer_state, random_prune_scope
        self.ticket = LotteryTicket(model if model is not None else self.fresh(seed), **ticket_kwargs)
        self.dense_final: dict | None = None  # level 0's trained weights (one-shot pruning starts from them)
        self.ticket_start: dict | None = None  # the current level's ticket at its first step (for `twin`)

    def fresh(self, seed: int) -> nn.Module:
        """A new model from the factory, its initialisation seeded independently of any earlier RNG use."""
        torch.manual_seed(seed)
        return self.model_fn()

    def rewound(self, seed: int | None = None) -> nn.Module:
        """A new model holding the snapshot's weights."""
        model = self.fresh(self.seed if seed is None else seed)
        model.load_state_dict(self.ticket.snapshot_state()["model"])
        return model

    def rewound_optimizer(self) -> dict | None:
        return self.ticket.snapshot_state()["optimizer"] if self.optimizer_state == "rewound" else None

    def start(self, kind: str, level: int) -> Start:
        if level == 0:
            return Start(self.ticket.model, self.ticket.mask)
        if kind != "ticket":
            return BASELINES.get(kind)(self, level)
        if self.mode.rewind_weights:
            self.ticket.rewind()
        return Start(self.ticket.model, self.ticket.mask, self.rewound_optimizer())

    def unit(self, kind: str, level: int) -> tuple[nn.Module, Unit]:
        """The model of (kind, level), mask applied, and its `Unit`."""
        return self._unit(kind, level, self.start(kind, level))

    def twin(self, level: int) -> tuple[nn.Module, Unit]:
        """A second copy of this level's ticket from the same start, for linear mode connectivity (Frankle et al.
        2020); at level 0 the dense network rewound to step k (their instability analysis)."""
        model = self.fresh(self.seed)
        model.load_state_dict(self.ticket_start if level > 0 else self.ticket.snapshot_state()["model"])
        _, unit = self._unit("stability_twin", level, Start(model, self.ticket.mask, self.rewound_optimizer()))
        unit.start_step = self.ticket.rewind_step
        return model, unit

    def _unit(self, kind: str, level: int, s: Start) -> tuple[nn.Module, Unit]:
        own = s.mask is self.ticket.mask and s.model is self.ticket.model
        applier = self.ticket.apply if own else mask_applier(s.model, s.mask)
        applier()
        if kind == "ticket":
            self.ticket_start = copy.deepcopy(s.model.state_dict())
        step = 0 if level == 0 else self.ticket.rewind_step
        fixed_lr = level > 0 and self.mode.fixed_lr
        return s.model, Unit(level, kind, s.mask, step, self.ticket, s.optimizer_state, fixed_lr, applier)


def run_imp(model_fn: Callable[[], nn.Module] | nn.Module, train_fn: Callable[[nn.Module, Unit], dict], levels: int,
            baselines: Sequence[str] = ("random_reinit", "random_prune"), *, strategy: str = "magnitude_layerwise",
            rates: float | PruneRates = 0.2, after_level: Callable[[IMP, int], list[dict]] | None = None,
            **kwargs) -> list[dict]:
    """Train levels 0..`levels` of IMP and each level's baselines; one row per unit:
    {"lth/level", "lth/kind", "lth/percent_remaining", **train_fn(model, unit)}.

    `model_fn()` builds a fresh model; given a model instance instead, the ticket trains it in place and random
    re-initialisations are copies of it re-initialised (`lth.pretrained.reinit_like`: transformers' `_init_weights`,
    else `reset_parameters()`). `after_level(imp, level)` may train extra units (e.g. `imp.twin(level)`) and returns
    their rows. Other keyword arguments go to `IMP` (seed, retrain,
    optimizer_state, random_prune_scope) and `LotteryTicket` (output_rate with output_layer or example_input, rewind,
    iterations_per_epoch, include, exclude, names).
    """
    for kind in baselines:
        BASELINES.get(kind)
    model = model_fn if isinstance(model_fn, nn.Module) else None
    imp = IMP(_factory(model_fn), model=model, strategy=strategy, rates=rates, **kwargs)
    rows: list[dict] = []
    for level in range(levels + 1):
        if level > 0:
            imp.ticket.prune()
        for kind in ["ticket"] + (list(baselines) if level > 0 else []):
            model, unit = imp.unit(kind, level)
            metrics = train_fn(model, unit)
            unit.apply()
            rows.append({"lth/level": level, "lth/kind": kind, "lth/percent_remaining": 100.0 * density(unit.mask),
                         **metrics})
            if level == 0:
                imp.dense_final = copy.deepcopy(model.state_dict())
                if not imp.ticket.has_snapshot:
                    raise RuntimeError(f"level 0 trained without a snapshot: train_fn must call unit.snapshot(step, "
                                       f"optimizer) at step unit.rewind_step={unit.rewind_step}")
        if after_level is not None:
            rows += after_level(imp, level)
    return rows


def _factory(model_or_fn: Callable[[], nn.Module] | nn.Module) -> Callable[[], nn.Module]:
    if not isinstance(model_or_fn, nn.Module):
        return model_or_fn
    return reinit_like(model_or_fn)  # transformers models re-initialise as their library does
