"""Baselines trained beside the ticket at every level >= 1, for the same steps k..end.

  random_reinit  the ticket's mask on a new, differently seeded initialisation (Frankle & Carbin 2019)
  random_prune   a random mask of the ticket's density (layer-wise or global) on the rewound weights
  one_shot       the dense trained network pruned once to this level's density, on the rewound weights
"""

from __future__ import annotations

import torch

from lth.branches.registry import BASELINES, Start
from lth.masks import ones_mask
from lth.pruning import compound, random_mask_like


@BASELINES.register("random_reinit")
def random_reinit(imp, level: int) -> Start:
    return Start(imp.fresh(imp.seed + 7919 * level), imp.ticket.mask)


@BASELINES.register("random_prune")
def random_prune(imp, level: int) -> Start:
    gen = torch.Generator().manual_seed(imp.seed * 104_729 + level)
    return Start(imp.rewound(), random_mask_like(imp.ticket.mask, gen, imp.random_prune_scope), imp.rewound_optimizer())


@BASELINES.register("one_shot")
def one_shot(imp, level: int) -> Start:
    dense = imp.fresh(imp.seed)
    dense.load_state_dict(imp.dense_final)
    mask = imp.ticket._prune_fn(dense, ones_mask(dense, imp.ticket.names), compound(imp.ticket.rates, level))
    return Start(imp.rewound(), mask, imp.rewound_optimizer())
