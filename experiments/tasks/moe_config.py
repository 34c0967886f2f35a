"""Config schemas of the `moe` task: clustered regression and character-LM data, and their models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from experiments.schema import check as _check
from experiments.schema import schema
from experiments.token_data import TokensDataCfg  # noqa: F401  (registers data=tokens)
from sparse_moe.data import ClusteredRegressionConfig
from sparse_moe.models import MODELS, CharTransformerConfig, RegressionMLPConfig


@schema("data", "base_clustered")
@dataclass
class ClusteredDataCfg(ClusteredRegressionConfig):
    """sparse_moe's clustered regression task, generated in memory; `val_fraction` of train held out."""

    name: str = "clustered_regression"
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        # 0 would leave no validation split, and the early-stop metrics would then be chosen on the test split
        _check(0.0 < self.val_fraction < 1.0, "data.val_fraction", self.val_fraction,
               "(0, 1): a validation split is needed to choose the early-stop step without looking at the test split")


@schema("data", "base_chars")
@dataclass
class CharDataCfg:
    """Character-level text: `path` (UTF-8) or, when null, Python standard-library sources (offline anywhere)."""

    name: str = "chars"
    path: Optional[str] = None
    val_fraction: float = 0.1
    max_chars: Optional[int] = None  # truncate the training text (smoke runs)

    def __post_init__(self) -> None:
        _check(0.0 < self.val_fraction < 1.0, "data.val_fraction", self.val_fraction, "(0, 1)")
        _check(self.max_chars is None or self.max_chars > 0, "data.max_chars", self.max_chars, "> 0 or null")



def _check_model_name(name: str, kind: str) -> None:
    """model.name must be a sparse_moe model of this schema's kind (a config error, exit 2, not a KeyError)."""
    _check(name == kind, "model.name", name, f"{kind} (the model this model group builds; another sparse_moe model "
           f"({', '.join(n for n in sorted(MODELS.names()) if n != kind)}) is its own group: model=<group>)")


@schema("model", "base_moe_regression")
@dataclass
class MoERegressionModelCfg(RegressionMLPConfig):
    name: str = "regression_mlp"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_model_name(self.name, "regression_mlp")


@schema("model", "base_moe_char")
@dataclass
class MoECharModelCfg(CharTransformerConfig):
    """vocab_size is set from the corpus at run time."""

    name: str = "char_transformer"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_model_name(self.name, "char_transformer")

