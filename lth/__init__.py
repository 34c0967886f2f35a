"""Lottery tickets: masks, magnitude/random pruning, rewinding, linear mode connectivity, export of pruned
networks, and the models of the papers. Plain PyTorch."""

# isort: off
from lth.models import MODELS, PrunableModel, build_model  # first: models registers the convnets it imports
# isort: on
from lth.connectivity import error_barrier, interpolate, is_stable, linear_path
from lth.export import load_pruned, save_pruned, structured
from lth.masks import Mask, apply_mask, density, is_subset, layer_densities, ones_mask
from lth.pruning import STRATEGIES, PruneRates, random_mask_like
from lth.rewind import RewindPoint

__all__ = [
    "MODELS", "STRATEGIES", "Mask", "PrunableModel", "PruneRates", "RewindPoint", "apply_mask", "build_model",
    "density", "error_barrier", "interpolate", "is_stable", "is_subset", "layer_densities", "linear_path",
    "load_pruned", "ones_mask", "random_mask_like", "save_pruned", "structured",
]
