"""Once-for-all networks (Cai et al., ICLR 2020): one elastic supernet, sub-networks specialised per budget.

Model side: the space (`space`), elastic layers and supernet, channel re-ordering, export to static modules,
BN recalibration and the analytic FLOPs table. Method side (appended below): schedules, training, predictor,
search, efficiency tables.
"""

from .bn import recalibrate_bn
from .export import StaticSubnet, export_subnet, load_subnet, save_subnet
from .reorder import reorder_channels
from .space import ArchSpace, SubnetConfig, SupernetSpec, make_divisible
from .supernet import OFASupernet, resize_input

__all__ = ["ArchSpace", "OFASupernet", "StaticSubnet", "SubnetConfig", "SupernetSpec", "export_subnet",
           "load_subnet", "make_divisible", "recalibrate_bn", "reorder_channels", "resize_input", "save_subnet"]

# method
