"""`MeterRun`: one training run wrapped in `meter.Meter` for trainers that own the loop, as a flat row.

Energy, CO2e and wall time are the meter's "train" window around the whole fit. FLOPs are counted (torch's
FlopCounterMode through `meter`, 2 per multiply-add, forward + backward) on the first `count_steps` optimizer steps
and scaled by the steps run: `flops/train_total` = mean counted FLOPs per step x steps, exact for fixed-shape
batches (counting every step would slow training several-fold).

    run = MeterRun(region="FRA")
    run.start(); for each step: run.step_start(); ...; run.step_end(); row = run.stop()
"""

from __future__ import annotations

from meter import Meter
from meter.flops import CONVENTION


class MeterRun:
    """`meter_config`: any `meter.MeterConfig` field (region, intensity_g_per_kwh, enabled, ...)."""

    def __init__(self, count_steps: int = 1, out_dir=None, **meter_config) -> None:
        if count_steps < 0:
            raise ValueError(f"count_steps={count_steps} must be >= 0")
        self.count_steps, self.out_dir, self.meter_config = count_steps, out_dir, meter_config
        self.meter: Meter | None = None
        self.row: dict | None = None  # the last run's row
        self._train = self._step = None
        self.steps = 0
        self.counted: list[int] = []

    def start(self) -> None:
        self.meter = Meter(out_dir=self.out_dir, **self.meter_config).start()
        self._train = self.meter.window("train")
        self._train.__enter__()
        self.steps, self.counted, self.row = 0, [], None

    def step_start(self) -> None:
        if self.meter is not None and len(self.counted) < self.count_steps and self._step is None:
            self._step = self.meter.window("counted_step", flops=True)
            self._measured = self._step.__enter__()  # filled (flops included) when the window closes

    def step_end(self) -> None:
        if self.meter is None:
            return
        if self._step is not None:
            self._step.__exit__(None, None, None)
            self.counted.append(int(self._measured.flops))
            self._step = None
        self.steps += 1

    def stop(self) -> dict:
        """Close the windows; the row: energy/*, carbon/*, time/wall_s, flops/train_total, train/steps."""
        if self.meter is None:
            return self.row or {}
        if self._step is not None:  # the fit ended inside a counted step
            self._step.__exit__(None, None, None)
            self._step = None
        self._train.__exit__(None, None, None)
        self.meter.stop()
        train = self.meter.result().windows["train"]
        per_step = sum(self.counted) / len(self.counted) if self.counted else None
        self.row = {**train.row(), "train/steps": self.steps, "flops/convention": CONVENTION,
                    "flops/train_total": int(round(per_step * self.steps)) if per_step is not None else None,
                    "flops/train_counted_steps": len(self.counted)}
        self.meter = None
        return self.row


def numeric(row: dict) -> dict[str, float]:
    """The numeric entries of a row (trainer loggers take floats; strings such as energy/method are left out)."""
    return {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
