"""Hugging Face `Trainer` callbacks (imports `transformers`; install with `pip install -e ".[hf]"`).

    ticket = LotteryTicketHFCallback(model, levels=2, preset="bert", strategy="magnitude_global", rates=0.1)
    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[ticket])
    MeterHFCallback().attach(trainer)          # first in line, so every reporting callback sees its keys
    while not ticket.done:                     # one train() per IMP unit, in lth.run_imp's order
        trainer.train()
    ticket.rows

`LotteryTicketHFCallback` snapshots the rewind point at step k of level 0 (train `max_steps - ticket.start_step`
steps at later levels), re-applies the mask after every optimizer step, resets the optimizer's state at each
train() (fresh, or the rewound state with optimizer_state="rewound") and between train() calls prunes, rewinds and
sets up the baselines. `MeterHFCallback` wraps each train() in `meter.Meter` and adds energy, CO2e, wall time and
FLOPs to the final training log (so `report_to` loggers, W&B included, receive them) and to `state.log_history`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from transformers import TrainerCallback

from integrations.meter_run import MeterRun, numeric
from integrations.ticket_run import TicketRun, TicketRunView


class LotteryTicketHFCallback(TicketRunView, TrainerCallback):
    """IMP with `lth.LotteryTicket` across train() calls; keyword arguments as `integrations.ticket_run.TicketRun`."""

    def __init__(self, model: nn.Module, levels: int, baselines: Sequence[str] = ("random_reinit", "random_prune"),
                 **kwargs) -> None:
        self.run = TicketRun(model, levels, baselines, **kwargs)

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        self.run.begin(optimizer)

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.run.step_start(state.global_step, optimizer)

    def on_step_end(self, args, state, control, **kwargs):
        self.run.step_end()

    def on_train_end(self, args, state, control, **kwargs):
        last = state.log_history[-1] if state.log_history else {}
        self.run.end(numeric(last))


class MeterHFCallback(TrainerCallback):
    """Each train() in `meter.Meter`; `rows` holds one row per train(). Keyword arguments as `MeterRun`."""

    def __init__(self, count_steps: int = 1, **meter_config) -> None:
        self.run = MeterRun(count_steps, **meter_config)
        self.rows: list[dict] = []

    def attach(self, trainer) -> MeterHFCallback:
        """Put this callback first, before the reporting callbacks, so they log what it adds."""
        trainer.callback_handler.callbacks.insert(0, self)
        return self

    def on_train_begin(self, args, state, control, **kwargs):
        self.run.start()

    def on_step_begin(self, args, state, control, **kwargs):
        self.run.step_start()

    def on_step_end(self, args, state, control, **kwargs):
        self.run.step_end()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None and "train_runtime" in logs and self.run.meter is not None:  # the final summary log
            added = numeric(self._finish())
            logs.update(added)
            if state.log_history:
                state.log_history[-1].update(added)

    def on_train_end(self, args, state, control, **kwargs):
        if self.run.meter is not None:  # no summary log came (e.g. logging disabled)
            state.log_history.append({**numeric(self._finish()), "step": state.global_step})

    def _finish(self) -> dict:
        row = self.run.stop()
        self.rows.append(row)
        return row
