"""`TicketRun`: iterative magnitude pruning across the fits of one model, for trainers that own the loop.

The units and their order are `lth.run_imp`'s: level 0 trains the dense network; each later level prunes the
previous level's trained ticket, then trains the ticket and each baseline, one fit per unit. The trainer keeps one
model object, so a unit's start (rewound ticket, random re-initialisation, random mask) is loaded into it in place
and the trained ticket is set aside while baselines train (the next level prunes the ticket, not a baseline).

    run = TicketRun(model, levels=2, preset="bert")
    while not run.done:
        run.begin(optimizer)              # fit start: weights and mask of the next unit
        for step ...: run.step_start(step, optimizer); ...; optimizer.step(); run.step_end()
        run.end(metrics)                  # fit end: its row
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from lth import IMP, Unit, density, preset_names, reinit_like
from lth.branches import BASELINES
from lth.masks import mask_applier


class TicketRun:
    """`levels` IMP levels with `baselines` on `model` (trained in place); keyword arguments go to `lth.IMP` and
    `LotteryTicket` (strategy, rates, rewind, seed, retrain, optimizer_state, include, exclude, names).
    `preset` (e.g. "bert", "transformer") chooses the prunable weights with `lth.preset_names`."""

    def __init__(self, model: nn.Module, levels: int, baselines: Sequence[str] = ("random_reinit", "random_prune"),
                 *, preset: str | None = None, **kwargs) -> None:
        for kind in baselines:
            BASELINES.get(kind)
        if preset is not None:
            kwargs["names"] = preset_names(model, preset, kwargs.pop("include", ()) or (), kwargs.pop("exclude", ()))
        self.model = model
        self.imp = IMP(reinit_like(model), model=model, **kwargs)
        self.plan = [(0, "ticket")] + [(lv, k) for lv in range(1, levels + 1) for k in ["ticket", *baselines]]
        self.index = 0
        self.unit: Unit | None = None
        self.rows: list[dict] = []
        self._ticket_trained: dict | None = None  # the last trained ticket's weights (baselines overwrite them)

    @property
    def done(self) -> bool:
        return self.index >= len(self.plan)

    @property
    def start_step(self) -> int:
        """The step the next unit starts at (the rewind step k from level 1 on): train `total - start_step` steps."""
        level, _ = self.plan[min(self.index, len(self.plan) - 1)]
        return 0 if level == 0 else self.imp.ticket.rewind_step

    def begin(self, optimizer: torch.optim.Optimizer | None = None) -> Unit:
        """Set the model to the next unit's start (mask applied); reset `optimizer` to its start state."""
        if self.done:
            raise RuntimeError(f"all {len(self.plan)} IMP units are trained; build a new TicketRun for more")
        level, kind = self.plan[self.index]
        self._masks_to_model_device()
        if kind == "ticket" and level > 0:
            self.model.load_state_dict(self._ticket_trained)  # prune the trained ticket, not the last baseline
            self.imp.ticket.prune()
        start_model, unit = self.imp.unit(kind, level)
        if start_model is not self.model:  # a baseline's own network: its weights into the trainer's model
            self.model.load_state_dict(start_model.state_dict())
        unit._apply = mask_applier(self.model, unit.mask)  # bound to the trainer's model on its current device
        unit.apply()
        if optimizer is not None:
            optimizer.state.clear()  # a fresh optimizer per unit (trainers may reuse the object across fits)
            if unit.optimizer_state is not None:
                optimizer.load_state_dict(unit.optimizer_state)
        self.unit = unit
        return unit

    def _masks_to_model_device(self) -> None:
        """Trainers move the model after this run was built: the ticket's mask follows its weights (pruning scores
        and masks must share a device)."""
        ticket, params = self.imp.ticket, dict(self.model.named_parameters())
        if any(m.device != params[n].device for n, m in ticket.mask.items()):
            ticket.set_mask({n: m.to(params[n].device) for n, m in ticket.mask.items()})

    def step_start(self, step: int, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Before optimizer step `step + 1`: at level 0, snapshot the rewind point at step k."""
        unit = self.unit
        if unit.level == 0 and step == unit.rewind_step and not unit.ticket.has_snapshot:
            unit.snapshot(step, optimizer)

    def step_end(self) -> None:
        """After every optimizer step: pruned weights back to zero."""
        self.unit.apply()

    def end(self, metrics: dict | None = None) -> dict:
        """After the unit's fit: its row {"lth/level", "lth/kind", "lth/percent_remaining", **metrics}."""
        unit = self.unit
        unit.apply()
        if unit.level == 0 and not unit.ticket.has_snapshot:
            raise RuntimeError(f"level 0 ended before step {unit.rewind_step} (the rewind point): train longer "
                               f"or rewind earlier")
        if unit.kind == "ticket":
            self._ticket_trained = copy.deepcopy(self.model.state_dict())
            if unit.level == 0:
                self.imp.dense_final = self._ticket_trained
        row = {"lth/level": unit.level, "lth/kind": unit.kind, "lth/percent_remaining": 100.0 * density(unit.mask),
               **(metrics or {})}
        self.rows.append(row)
        self.index += 1
        self.unit = None
        return row


class TicketRunView:
    """What a trainer callback holding a `TicketRun` as `self.run` shows its user (both trainers' callbacks)."""

    run: TicketRun

    @property
    def done(self) -> bool:
        return self.run.done

    @property
    def start_step(self) -> int:
        return self.run.start_step

    @property
    def rows(self) -> list[dict]:
        return self.run.rows

    @property
    def ticket(self):
        return self.run.imp.ticket
