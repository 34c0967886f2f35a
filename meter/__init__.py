"""The instrument: FLOPs (`meter.flops`), energy and carbon (`Meter`), carbon-aware scheduling (`meter.schedule`).

Usable on its own in any PyTorch script; imports nothing else from leanlab:

    with Meter(region="FRA") as m:         # any MeterConfig field as a keyword
        with m.window("train"):            # named, nestable; also a decorator
            ...
        with m.window("eval", flops=True): # also counts FLOPs (torch FlopCounterMode)
            ...
    print(m.result())                      # MeterResult: J, kWh, method, g CO2e, intensity source, wall s, FLOPs
"""

from meter.config import MeterConfig, TraceError
from meter.measurement import Measurement
from meter.meter import Meter, metered
from meter.result import MeterResult

__all__ = ["Meter", "MeterConfig", "MeterResult", "Measurement", "TraceError", "metered"]
