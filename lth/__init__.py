"""Lottery tickets: masks, magnitude/random pruning, rewinding, and their models. Plain PyTorch."""

from lth.masks import Mask, apply_mask, density, is_subset, layer_densities, ones_mask
from lth.models import MODELS, PrunableModel, build_model
from lth.pruning import STRATEGIES, PruneRates, random_mask_like
from lth.rewind import RewindPoint

__all__ = [
    "MODELS", "STRATEGIES", "Mask", "PrunableModel", "PruneRates", "RewindPoint", "apply_mask", "build_model",
    "density", "is_subset", "layer_densities", "ones_mask", "random_mask_like",
]
