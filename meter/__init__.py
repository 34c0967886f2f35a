"""The instrument: FLOPs (`meter.flops`), energy and carbon (`Meter`), carbon-aware scheduling (`meter.schedule`).

Usable on its own in any PyTorch script; imports nothing else from leanlab.
"""

from meter.config import MeterConfig
from meter.measurement import Measurement
from meter.meter import Meter

__all__ = ["Meter", "MeterConfig", "Measurement"]
