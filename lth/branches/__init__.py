"""How each unit of an IMP level starts: retraining modes of the ticket (`RETRAIN`) and baselines (`BASELINES`),
one short module per branch (as open_lth's `lottery/branch/`). Importing the package registers them all."""

from lth.branches import baselines, retrain  # noqa: F401  (registration)
from lth.branches.registry import BASELINES, RETRAIN, RetrainMode, Start

__all__ = ["BASELINES", "RETRAIN", "RetrainMode", "Start"]
