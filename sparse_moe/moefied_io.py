"""Save and load a moefied model: its weights plus the moefy recipe, re-applied to a freshly built dense model.

    save_moefied(model, "out/")                      # model.safetensors + moefy.json (+ config.json for transformers)
    model = load_moefied("out/", model=build_dense()) # your model: build the dense architecture, we convert and load
    model = load_moefied("out/")                      # a transformers model: rebuilt from config.json's architecture

transformers' own `save_pretrained`/`from_pretrained` cannot round-trip a moefied model: `from_pretrained` builds the
dense architecture and would drop the expert weights. The converted config (num_local_experts, num_experts_per_tok,
moefy_recipes) is written beside the weights, so `load_moefied` rebuilds the dense model, applies each recorded
moefy call to the recorded module names (upcycle=False: the weights come from the file) and loads the state
strictly. Tied weights (GPT-2's lm_head) are saved once (safetensors `save_model`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from .upcycle import moefy

RECIPE_FILE, WEIGHTS_FILE = "moefy.json", "model.safetensors"


def save_moefied(model: nn.Module, folder: str | Path) -> Path:
    """Write `model`'s state and its moefy recipes to `folder` (created); returns the folder."""
    recipes = getattr(model, "moefy_recipes", None)
    if not recipes:
        raise ValueError(f"save_moefied: {type(model).__name__} carries no moefy recipe (was it converted by moefy?)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dtype = next(model.parameters()).dtype
    config = getattr(model, "config", None)
    hf = config is not None and hasattr(config, "save_pretrained")
    if hf:
        config.architectures = [type(model).__name__]
        config.save_pretrained(folder)
    meta = {"recipes": recipes, "dtype": str(dtype).removeprefix("torch."), "class": type(model).__name__,
            "transformers_config": hf}
    save_model(model, str(folder / WEIGHTS_FILE))
    (folder / RECIPE_FILE).write_text(json.dumps(meta, indent=2))
    return folder


def _build_transformers(folder: Path) -> nn.Module:
    import transformers  # only here: sparse_moe never imports it otherwise

    config = transformers.AutoConfig.from_pretrained(folder)
    cls = getattr(transformers, (config.architectures or [""])[0], None)
    if cls is None:
        raise ValueError(f"load_moefied: {folder}/config.json names architectures={config.architectures}, not a "
                         "transformers class; pass model= (the dense model, freshly built)")
    return cls(config)


def load_moefied(folder: str | Path, model: nn.Module | None = None) -> nn.Module:
    """The moefied model saved in `folder`. `model`: the dense architecture, freshly built (any weights); None
    rebuilds a transformers model from the folder's config.json. Returns the converted, loaded model (eval mode
    if `model` was)."""
    folder = Path(folder)
    meta_path = folder / RECIPE_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"load_moefied: {meta_path} not found (write it with sparse_moe.save_moefied)")
    meta = json.loads(meta_path.read_text())
    if model is None:
        if not meta["transformers_config"]:
            raise ValueError(f"load_moefied: {folder} holds a {meta['class']} that is not a transformers model; pass "
                             "model= (the dense model, freshly built)")
        model = _build_transformers(folder)
    if getattr(model, "moefy_recipes", None):
        raise ValueError("load_moefied: model= is already moefied; pass the dense model")
    model.to(getattr(torch, meta["dtype"]))
    for r in meta["recipes"]:
        names = set(r["targets"])
        moefy(model, match=lambda name, _m, names=names: name in names, num_experts=r["num_experts"],
              top_k=r["top_k"], router=r["router"], upcycle=False, drop_hidden_dropout=r["drop_hidden_dropout"],
              **r["options"])
    load_model(model, str(folder / WEIGHTS_FILE), strict=True)
    return model
