"""Once-for-all networks (Cai et al., ICLR 2020): one elastic supernet, sub-networks specialised per budget.

Model side: the space (`space`), elastic layers and supernet, channel re-ordering, export to static modules,
BN recalibration and the analytic FLOPs table. Method side (appended below): schedules, training, predictor,
search, efficiency tables.
"""

from .bn import recalibrate_bn
from .export import StaticSubnet, export_subnet, load_subnet, save_subnet
from .flops import FlopsTable
from .reorder import reorder_channels
from .space import ArchSpace, SubnetConfig, SupernetSpec, make_divisible
from .supernet import OFASupernet, resize_input

__all__ = ["ArchSpace", "FlopsTable", "OFASupernet", "StaticSubnet", "SubnetConfig", "SupernetSpec", "export_subnet",
           "load_subnet", "make_divisible", "recalibrate_bn", "reorder_channels", "resize_input", "save_subnet"]

# method
from .efficiency import LatencyTable, energy_per_inference, measure_latency, table_error  # noqa: E402
from .predictor import AccuracyPredictor, PredictorEnsemble, kendall_tau, rmse  # noqa: E402
from .schedule import PS_SCHEDULE, SCHEDULES, Phase  # noqa: E402
from .search import EvolutionSearch, InfeasibleConstraint  # noqa: E402
from .training import SAMPLERS, Batches, OptimConfig, SourceBatches, train_phase, train_schedule, train_static  # noqa: E402

__all__ += ["AccuracyPredictor", "PredictorEnsemble", "Batches", "SourceBatches", "EvolutionSearch", "InfeasibleConstraint", "LatencyTable",
            "OptimConfig", "PS_SCHEDULE", "Phase", "SAMPLERS", "SCHEDULES", "energy_per_inference", "kendall_tau",
            "measure_latency", "rmse", "table_error", "train_phase", "train_schedule", "train_static"]
