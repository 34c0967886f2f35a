"""Lightning callbacks (imports `lightning`; install with `pip install -e ".[lightning]"`).

    ticket = LotteryTicketCallback(lit.model, levels=2, preset="bert", strategy="magnitude_global", rates=0.1)
    while not ticket.done:                                   # one fit per IMP unit, in lth.run_imp's order
        L.Trainer(max_steps=total - ticket.start_step, callbacks=[ticket, MeterCallback()]).fit(lit, loader)
    ticket.rows                                              # one row per (level, kind)

`LotteryTicketCallback` snapshots the rewind point at step k of level 0, re-applies the mask after every optimizer
step, and between fits prunes, rewinds and sets up the baselines (random re-initialisation, random pruning).
Construct it before the first fit (it copies the model to build the baselines' networks). `MeterCallback` wraps
each fit in `meter.Meter` and logs energy, CO2e, wall time and FLOPs to the trainer's loggers (W&B when
`WandbLogger` is one of them).
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
from torch import nn

from integrations.meter_run import MeterRun, numeric
from integrations.ticket_run import TicketRun, TicketRunView


def _optimizer(trainer):
    return trainer.optimizers[0] if trainer.optimizers else None


def _log(trainer, row: dict) -> None:
    for logger in trainer.loggers:
        logger.log_metrics(numeric(row), step=trainer.global_step)


class LotteryTicketCallback(TicketRunView, L.Callback):
    """IMP with `lth.LotteryTicket` across fits; keyword arguments as `integrations.ticket_run.TicketRun`."""

    def __init__(self, model: nn.Module, levels: int, baselines: Sequence[str] = ("random_reinit", "random_prune"),
                 **kwargs) -> None:
        self.run = TicketRun(model, levels, baselines, **kwargs)

    def on_fit_start(self, trainer, pl_module) -> None:
        self.run.begin(_optimizer(trainer))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.run.step_start(trainer.global_step, _optimizer(trainer))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.run.step_end()

    def on_fit_end(self, trainer, pl_module) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
        _log(trainer, self.run.end(metrics))


class MeterCallback(L.Callback):
    """Each fit in `meter.Meter`; `rows` holds one row per fit. Keyword arguments as `MeterRun`."""

    def __init__(self, count_steps: int = 1, **meter_config) -> None:
        self.run = MeterRun(count_steps, **meter_config)
        self.rows: list[dict] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self.run.start()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.run.step_start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.run.step_end()

    def on_train_end(self, trainer, pl_module) -> None:
        row = self.run.stop()
        self.rows.append(row)
        _log(trainer, row)
