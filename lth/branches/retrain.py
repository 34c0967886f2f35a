"""Retraining modes of the ticket at levels >= 1 (Renda et al. 2020), as data. All replay steps k..end.

  weight_rewind  weights <- their step-k values (k = 0 is the original lottery ticket); LR schedule replays from k
  lr_rewind      weights <- the previous level's final values; LR schedule replays from k
  finetune       weights <- the previous level's final values; LR fixed at the schedule's final value
Every unit of a level (baselines included) trains under the mode's LR policy, so they differ only in their start.
"""

from __future__ import annotations

from lth.branches.registry import RETRAIN, RetrainMode

RETRAIN.register("weight_rewind")(RetrainMode(rewind_weights=True, fixed_lr=False))
RETRAIN.register("lr_rewind")(RetrainMode(rewind_weights=False, fixed_lr=False))
RETRAIN.register("finetune")(RetrainMode(rewind_weights=False, fixed_lr=True))
