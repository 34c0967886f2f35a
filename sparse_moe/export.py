"""Safetensors export of any model holding MoE experts, in two key layouts.

stacked:    `<prefix>.w1` [E, d, f_in], `<prefix>.w2` [E, f, d] (and b1, b2) exactly as in the state dict.
per_expert: `<prefix>.<e>.w1` [d, f_in], `<prefix>.<e>.w2` [f, d] ... one tensor per expert.
The layout is recorded in the file's metadata (`sparse_moe_layout`) and detected on load.
"""

from __future__ import annotations

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .experts import Experts

LAYOUTS = ("stacked", "per_expert")
_EXPERT_PARAMS = ("w1", "w2", "b1", "b2")


def _expert_prefixes(model: nn.Module) -> dict[str, int]:
    return {name: m.num_experts for name, m in model.named_modules() if isinstance(m, Experts)}


def _split_key(key: str, prefixes: dict[str, int]) -> tuple[str, str] | None:
    head, _, leaf = key.rpartition(".")
    return (head, leaf) if head in prefixes and leaf in _EXPERT_PARAMS else None


def export_state(model: nn.Module, layout: str = "stacked") -> dict[str, torch.Tensor]:
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} unknown; allowed: {', '.join(LAYOUTS)}")
    prefixes = _expert_prefixes(model)
    out: dict[str, torch.Tensor] = {}
    for key, t in model.state_dict().items():
        split = _split_key(key, prefixes)
        if layout == "per_expert" and split is not None:
            head, leaf = split
            for e, te in enumerate(t.unbind(0)):
                out[f"{head}.{e}.{leaf}"] = te.detach().contiguous().clone()
        else:
            out[key] = t.detach().contiguous().clone()
    return out


def save_safetensors(model: nn.Module, path: str, layout: str = "stacked") -> None:
    save_file(export_state(model, layout), path, metadata={"sparse_moe_layout": layout})


def import_state(model: nn.Module, tensors: dict[str, torch.Tensor], layout: str) -> dict[str, torch.Tensor]:
    """Inverse of `export_state`: tensors in `layout` -> a state dict for `model`."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} unknown; allowed: {', '.join(LAYOUTS)}")
    if layout == "stacked":
        return dict(tensors)
    prefixes = _expert_prefixes(model)
    state = {}
    for key in model.state_dict():
        split = _split_key(key, prefixes)
        if split is None:
            state[key] = tensors[key]
            continue
        head, leaf = split
        try:
            state[key] = torch.stack([tensors[f"{head}.{e}.{leaf}"] for e in range(prefixes[head])])
        except KeyError as err:
            raise KeyError(f"per_expert safetensors file lacks {err.args[0]!r} needed for {key!r}") from err
    return state


def load_safetensors(model: nn.Module, path: str, strict: bool = True) -> None:
    with safe_open(path, framework="pt") as f:
        layout = (f.metadata() or {}).get("sparse_moe_layout", "stacked")
    model.load_state_dict(import_state(model, load_file(path), layout), strict=strict)
