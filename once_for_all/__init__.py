"""Once-for-all networks (Cai et al., ICLR 2020): one elastic supernet, sub-networks specialised per budget.

Model side: the space (`space`), elastic layers and supernet, channel re-ordering, export to static modules,
BN recalibration and the analytic FLOPs table. Method side (appended below): schedules, training, predictor,
search, efficiency tables.
"""

from .space import ArchSpace, SubnetConfig, SupernetSpec, make_divisible

__all__ = ["ArchSpace", "SubnetConfig", "SupernetSpec", "make_divisible"]

# method
