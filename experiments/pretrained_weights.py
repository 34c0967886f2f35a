"""Pretrained weights for library models: `model.weights=<torchvision weights name>` and `model.weights_path=<file>`.

`weights` goes through torchvision's own mechanism (`get_weight(name).get_state_dict`): it fetches into torch.hub's
cache (`$TORCH_HOME/hub/checkpoints/`) on a machine online and reads the cached file offline. `weights_path` reads a
local `torch.save`d state dict (offline clusters). Both load with `weights_only=True` and both go through
`apply_state_dict`: a missing or unexpected key, or a shape that differs, is a config error naming the first such
key. One exception: the classifier head (the model's last `nn.Linear`) keeps its fresh init when only its shape
differs (ImageNet's 1000 classes onto a 10-class dataset): the standard fine-tuning start, logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from experiments.errors import InputError
from experiments.schema import ConfigError
from experiments.schema import check as _check

log = logging.getLogger(__name__)


def check_torchvision_weights(model_name: str, weights: Optional[str], weights_path: Optional[str]) -> None:
    """Config checks (compose time): `weights` is one of `model_name`'s torchvision weights; not both sources."""
    _check(weights is None or weights_path is None, "model.weights/weights_path", (weights, weights_path),
           "at most one of them (a torchvision weights name, or a local state_dict file)")
    if weights is None:
        return
    import torchvision.models

    own = torchvision.models.get_model_weights(model_name)  # the model's weights enum (ResNet50_Weights)
    allowed = [f"{own.__name__}.{w.name}" for w in own] + [f"{own.__name__}.DEFAULT"]
    try:
        enum = torchvision.models.get_weight(weights)
    except (ValueError, KeyError, AttributeError):
        enum = None
    owned = enum is not None and type(enum) is own
    _check(owned, "model.weights", weights, f"weights of model.name={model_name}: {', '.join(allowed) or 'none'}")


def torchvision_state_dict(weights: str) -> dict[str, torch.Tensor]:
    """The state dict of torchvision weights `weights` (e.g. ResNet50_Weights.IMAGENET1K_V2) via torch.hub's cache;
    InputError naming the cache file when it is absent and cannot be fetched (an offline machine)."""
    import torchvision.models

    enum = torchvision.models.get_weight(weights)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
    try:
        return enum.get_state_dict(progress=False, weights_only=True)
    except OSError as e:  # URLError is an OSError: offline and not cached
        raise InputError(f"model.weights={weights!r}: {cached} is not cached and fetching {enum.url} failed ({e}); "
                         "fetch it on a machine online (or copy the file there), or use model.weights_path") from None


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """A state dict saved with `torch.save` at `path`, read with weights_only=True; `{"state_dict": ...}` and
    `{"model": ...}` wrappers (common checkpoint layouts) are unwrapped. InputError when missing or unreadable."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"model.weights_path={path!r} is not a file; give a torch.save(model.state_dict()) file")
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (pickle/zip errors, refused globals: all mean "not a weights file")
        raise InputError(f"model.weights_path={path!r} is not a readable state dict ({type(e).__name__}: {e})") \
            from None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"model.weights_path={path!r} holds a {type(obj).__name__}, not a state dict of tensors")
    return dict(obj)


def head_names(model: nn.Module) -> set[str]:
    """Parameter names of the model's last nn.Linear (the classifier head), empty when it has none."""
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        return set()
    return {f"{linears[-1]}.{p}" for p, _ in model.get_submodule(linears[-1]).named_parameters(recurse=False)}


def apply_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> list[str]:
    """Load `state` into `model` strictly; returns the head keys kept at their fresh init (shape differs).

    ConfigError naming `source` and the first missing key, unexpected key, or non-head shape mismatch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        what = f"missing key {missing[0]!r}" if missing else f"unexpected key {unexpected[0]!r}"
        raise ConfigError(f"{source} does not match model ({what}; {len(missing)} missing, {len(unexpected)} "
                          "unexpected): give weights saved from the same architecture")
    head = head_names(model)
    kept = [k for k in own if own[k].shape != state[k].shape and k in head]
    for k in own:
        if own[k].shape != state[k].shape and k not in head:
            raise ConfigError(f"{source} does not match model: {k!r} has shape {tuple(state[k].shape)}, the model "
                              f"{tuple(own[k].shape)}")
    loadable = {k: v for k, v in state.items() if k not in kept}
    model.load_state_dict({**own, **loadable})
    if kept:
        log.info("%s: classifier head %s has another number of classes; kept at its fresh init", source, kept)
    return kept


def load_pretrained(model: nn.Module, weights: Optional[str], weights_path: Optional[str]) -> list[str]:
    """Apply `weights` (torchvision name) or `weights_path` (local file) to `model`; no-op when both are None."""
    if weights is not None:
        return apply_state_dict(model, torchvision_state_dict(weights), f"model.weights={weights!r}")
    if weights_path is not None:
        return apply_state_dict(model, read_state_dict(weights_path), f"model.weights_path={weights_path!r}")
    return []
