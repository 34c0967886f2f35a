"""Exports of a pruned model: plain weights + mask (safetensors), and a structurally smaller dense MLP.

`save_pruned` writes `<dir>/model.safetensors` (the state dict, pruned entries exactly 0) and
`<dir>/mask.safetensors` (bool tensors over the prunable weights); both load without unpickling anything.

`structured_mlp` removes whole hidden neurons a mask has disconnected and returns a smaller dense `MLP`:
  dead-in   every incoming weight masked: the neuron outputs the constant relu(bias); its contribution
            W_next[:, j] * relu(b_j) is folded into the next layer's bias, then the neuron is dropped
  dead-out  every outgoing weight masked: it contributes nothing and is dropped
Both cascade (a neuron fed only by dead-in neurons becomes constant itself), so one forward sweep (dead-in)
and one backward sweep (dead-out) reach the fixed point. Inputs and outputs keep their sizes. The smaller model
computes the masked model's sums minus terms that are exactly zero, plus folded constants: equal up to float
rounding order (~1e-7 relative in float32, ~1e-16 in float64), not bit for bit.
Convnets are not handled: a constant channel fed through a zero-padded conv is not a constant, so only
dead-out channels (or relu(bias) == 0) could go; use Torch-Pruning for graphs with residuals.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from lth.masks import Mask
from lth.models import MLP

MODEL_FILE, MASK_FILE = "model.safetensors", "mask.safetensors"


def save_pruned(directory: str | Path, model: nn.Module, mask: Mask, metadata: dict | None = None) -> Path:
    """Write weights and mask as safetensors; `metadata` (JSON-able) is stored in the model file's header.

    Refuses a model whose masked weights are not zero (call `apply_mask` first), so the file is the ticket.
    """
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    unknown = sorted(set(mask) - set(state))
    if unknown:
        raise KeyError(f"mask names not in the model's state dict: {unknown}")
    for name, m in mask.items():
        if m.shape != state[name].shape or m.dtype != torch.bool:
            raise ValueError(f"mask[{name!r}] must be bool of shape {tuple(state[name].shape)}, "
                             f"got {m.dtype} {tuple(m.shape)}")
        alive = int(torch.count_nonzero(state[name][~m.cpu()]))
        if alive:
            raise ValueError(f"{name} has {alive} nonzero weights where the mask prunes; call apply_mask first")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(state, str(directory / MODEL_FILE), metadata={"leanlab": json.dumps(metadata or {})})
    save_file({k: v.cpu().contiguous() for k, v in mask.items()}, str(directory / MASK_FILE))
    return directory


def load_pruned(directory: str | Path) -> tuple[dict[str, torch.Tensor], Mask, dict]:
    """(state dict, mask, metadata) written by `save_pruned`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    directory = Path(directory)
    missing = [f for f in (MODEL_FILE, MASK_FILE) if not (directory / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{directory} lacks {missing}; a pruned export holds {MODEL_FILE} and {MASK_FILE}")
    with safe_open(str(directory / MODEL_FILE), framework="pt") as f:
        metadata = json.loads((f.metadata() or {}).get("leanlab", "{}"))
    return load_file(str(directory / MODEL_FILE)), load_file(str(directory / MASK_FILE)), metadata


def _linears(model: nn.Module) -> list[nn.Linear]:
    if not isinstance(model, MLP):
        raise TypeError(f"structured_mlp takes an lth MLP (mlp, lenet_300_100), got {type(model).__name__}")
    return [m for m in model.net if isinstance(m, nn.Linear)]


@torch.no_grad()
def structured_mlp(model: MLP, mask: Mask | None = None) -> MLP:
    """A smaller dense MLP whose outputs equal `model`'s with `mask` applied. mask=None: zeros in the weights."""
    layers = _linears(model)
    names = [f"net.{i}" for i, m in enumerate(model.net) if isinstance(m, nn.Linear)]
    ws, bs = [], []
    for name, lin in zip(names, layers):
        m = mask.get(f"{name}.weight") if mask is not None else None
        ws.append(lin.weight.detach().clone() * (m.to(lin.weight.dtype) if m is not None else 1))
        bs.append(lin.bias.detach().clone())
    # forward sweep: dead-in neurons become constants folded into the next bias
    for i in range(len(ws) - 1):
        dead = (ws[i] == 0).all(dim=1)
        const = torch.relu(bs[i][dead])
        bs[i + 1] += ws[i + 1][:, dead] @ const
        ws[i], bs[i], ws[i + 1] = ws[i][~dead], bs[i][~dead], ws[i + 1][:, ~dead]
    # backward sweep: dead-out neurons contribute nothing
    for i in range(len(ws) - 1, 0, -1):
        dead = (ws[i] == 0).all(dim=0)
        ws[i], ws[i - 1], bs[i - 1] = ws[i][:, ~dead], ws[i - 1][~dead], bs[i - 1][~dead]
    small = MLP(ws[0].shape[1], [w.shape[0] for w in ws[:-1]], ws[-1].shape[0], init="torch_default")
    small.to(ws[0].dtype)
    for lin, w, b in zip(_linears(small), ws, bs):
        lin.weight.copy_(w)
        lin.bias.copy_(b)
    return small


def linear_macs(model: nn.Module, mask: Mask | None = None) -> int:
    """Multiply-adds of one sample through the Linear layers; with a mask, only unmasked weights count."""
    total = 0
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            key = f"{name}.weight"
            total += int(mask[key].sum()) if mask is not None and key in mask else m.weight.numel()
    return total
