"""Lottery tickets: masks, magnitude/random pruning, rewinding, the IMP schedule with its baselines for any model
and loop (`LotteryTicket`, `run_imp`), presets for pretrained transformers (`pretrained_ticket`), linear mode
connectivity, export of pruned networks, and the models and data of the papers. Plain PyTorch."""

# Model and dataset modules register into lth.model_registry.MODELS / lth.splits.DATASETS on import.
from lth import convnets, data, image_data, image_folder, models, resnet, token_data  # noqa: F401
from lth.connectivity import error_barrier, interpolate, is_stable, linear_path
from lth.export import load_pruned, save_pruned, structured
from lth.imp import IMP, Unit, run_imp
from lth.masks import Mask, apply_mask, density, is_subset, layer_densities, ones_mask
from lth.model_registry import MODELS, PrunableModel, build_model
from lth.pretrained import PRESETS, preset_names, pretrained_ticket, reinit_like
from lth.pruning import STRATEGIES, PruneRates, random_mask_like
from lth.rewind import RewindPoint
from lth.ticket import LotteryTicket, prunable_names

__all__ = [
    "IMP", "MODELS", "PRESETS", "STRATEGIES", "LotteryTicket", "Mask", "PrunableModel", "PruneRates", "RewindPoint",
    "Unit", "apply_mask", "build_model", "density", "error_barrier", "interpolate", "is_stable", "is_subset",
    "layer_densities", "linear_path", "load_pruned", "ones_mask", "preset_names", "pretrained_ticket", "prunable_names",
    "random_mask_like", "reinit_like", "run_imp", "save_pruned", "structured",
]
