"""Models from other libraries for the `lth` task: a local Hugging Face checkpoint (`model=hf`), any timm model
(`model=timm`), and MNIST-1D as tokens (`data=mnist1d_tokens`) for transformers. Libraries import when used.

    leanlab experiment=lth_mnist1d data=mnist1d_tokens model=hf model.name_or_path=/path/to/checkpoint
    leanlab experiment=lth_mnist1d data=mnist1d_tokens data.target=next_token model=hf model.head=causal_lm ...
    leanlab experiment=lth_cifar... model=timm model.name=resnet18
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from experiments.errors import InputError
from experiments.schema import ConfigError, cross_check, schema
from experiments.schema import check as _check
from experiments.tasks.lth_config import DataCfg, _check_init

# model.head -> the transformers Auto class and whether it takes num_labels from the data.
HEADS = {"sequence_classification": ("AutoModelForSequenceClassification", True),
         "causal_lm": ("AutoModelForCausalLM", False)}


def _require(module: str, extra: str):
    try:
        return __import__(module)
    except ImportError:
        raise InputError(f"{module} is not installed; install the extra: pip install -e \".[{extra}]\"") from None


class HFLogits(nn.Module):
    """A transformers model as a plain module: input_ids [B, S] -> logits ([B, C] classification, [B, S, V] LM)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids).logits

    def _init_weights(self, module: nn.Module) -> None:  # lth.reinit_like: the random-reinit baseline's init
        self.model._init_weights(module)


@schema("model", "base_hf")
@dataclass
class HFModelCfg:
    """A local transformers checkpoint folder (`save_pretrained`), loaded with `local_files_only` (never a
    download); IMP prunes the `preset`'s weights (lth.PRESETS), minus method.exclude."""

    name: str = "hf"
    name_or_path: Optional[str] = None
    head: str = "sequence_classification"  # sequence_classification | causal_lm
    preset: str = "transformer"  # lth.PRESETS: transformer, bert, transformer_attention, transformer_ffn
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra from_pretrained arguments

    def __post_init__(self) -> None:
        from lth import PRESETS

        _check(self.head in HEADS, "model.head", self.head, ", ".join(HEADS))
        _check(self.preset in PRESETS, "model.preset", self.preset, ", ".join(PRESETS.names()))
        if self.name_or_path is None:
            raise ConfigError("model.name_or_path=None is invalid; allowed: a local checkpoint folder "
                              "(one written by save_pretrained)")

    def check_inputs(self) -> None:
        """Before the run starts (experiments.inputs): the folder and transformers exist, else InputError (exit 4)."""
        if not (Path(self.name_or_path) / "config.json").is_file():
            raise InputError(f"model.name_or_path={self.name_or_path!r}: {Path(self.name_or_path).resolve()} holds no "
                             "config.json; give a local folder written by save_pretrained (nothing is downloaded)")
        _require("transformers", "hf")

    def checkpoint_config(self) -> dict:
        """The checkpoint's config.json ({} while the folder is missing: check_inputs reports it)."""
        path = Path(self.name_or_path) / "config.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def build(self, in_features: int, num_classes: int) -> nn.Module:
        import transformers

        auto, takes_labels = HEADS[self.head]
        extra = dict(num_labels=num_classes, ignore_mismatched_sizes=True) if takes_labels else {}
        model = getattr(transformers, auto).from_pretrained(self.name_or_path, local_files_only=True,
                                                            dtype=torch.float32, **extra, **self.kwargs)
        return HFLogits(model)

    def ticket_names(self, model: nn.Module, exclude: list[str]) -> list[str]:
        from lth import preset_names

        return preset_names(model, self.preset, exclude=exclude)


@schema("model", "base_timm")
@dataclass
class TimmModelCfg:
    """Any timm model by name, `pretrained=False` (never a download), `num_classes` from the data; `weights_path`
    loads a local state dict (experiments/pretrained_weights.py: mismatch = config error naming the key)."""

    name: str = "resnet18"
    init: str = "torch_default"
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra create_model arguments (e.g. in_chans: 1)
    weights_path: Optional[str] = None  # torch.save(model.state_dict()) file, read with weights_only=True

    def __post_init__(self) -> None:
        timm = _require("timm", "timm")
        _check(timm.is_model(self.name), "model.name", self.name,
               "a timm model name (timm.list_models(); e.g. resnet18, vit_tiny_patch16_224)")
        _check_init(self.init)

    def build(self, in_features: int, num_classes: int) -> nn.Module:
        import timm

        from experiments.pretrained_weights import load_pretrained
        from lth.model_registry import init_weights

        model = timm.create_model(self.name, pretrained=False, num_classes=num_classes, **self.kwargs)
        init_weights(model, self.init)
        load_pretrained(model, None, self.weights_path)
        return model


@schema("data", "base_token_data")
@dataclass
class TokenDataCfg(DataCfg):
    """MNIST-1D as token sequences (lth/token_data.py): target label (classification) or next_token (causal LM)."""

    name: str = "mnist1d_tokens"
    vocab_size: int = 32
    target: str = "label"

    def __post_init__(self) -> None:
        from lth.token_data import TARGETS

        super().__post_init__()
        _check(self.vocab_size >= 2, "data.vocab_size", self.vocab_size, ">= 2")
        _check(self.target in TARGETS, "data.target", self.target, ", ".join(TARGETS))

    def loader_kwargs(self) -> dict:
        return {**super().loader_kwargs(), "vocab_size": self.vocab_size, "target": self.target}


@cross_check("lth")
def _tokens_fit_the_checkpoint(cfg) -> None:
    """Token data for a checkpoint: its vocabulary holds the data's tokens, its head matches the data's target."""
    if not isinstance(cfg.model, HFModelCfg):
        return
    _check(isinstance(cfg.data, TokenDataCfg), "data", cfg.data.name, "token data (data=mnist1d_tokens) for model=hf")
    vocab = cfg.model.checkpoint_config().get("vocab_size")
    _check(vocab is None or cfg.data.vocab_size <= vocab, "data.vocab_size", cfg.data.vocab_size,
           f"<= the checkpoint's vocab_size {vocab}")
    wanted = "next_token" if cfg.model.head == "causal_lm" else "label"
    _check(cfg.data.target == wanted, "data.target", cfg.data.target, f"{wanted} (model.head={cfg.model.head})")
