"""Exports of a pruned model: plain weights + mask (safetensors), and a structurally smaller dense model.

`save_pruned` writes `<dir>/model.safetensors` (the state dict, pruned entries exactly 0) and
`<dir>/mask.safetensors` (bool tensors over the prunable weights); both load without unpickling anything.

`structured` removes whole hidden neurons / channels a mask has disconnected and returns a smaller dense model of
the same class (MLP, Conv-2/4/6, MNIST-1D CNN):
  dead-in   every incoming weight masked: the unit outputs the constant relu(bias); when the next layer is a
            Linear its contribution is folded into that layer's bias and the unit dropped. Into a zero-padded
            conv a constant map is not constant at the borders, so there it is dropped only when relu(bias) = 0
  dead-out  every outgoing weight masked: it contributes nothing and is dropped
Both cascade (a unit fed only by dropped constants becomes constant itself), so one forward sweep (dead-in)
and one backward sweep (dead-out) reach the fixed point. Inputs and outputs keep their sizes. The smaller model
computes the masked model's sums minus terms that are exactly zero, plus folded constants: equal up to float
rounding order (~1e-6 in float32, ~1e-12 in float64), not bit for bit. BatchNorm and residual models (VGG,
ResNet-20) are refused: a residual add ties channels across blocks (Torch-Pruning's dependency graph does that).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lth.convnets import CNN1D, ConvNet
from lth.masks import Mask
from lth.models import MLP
from meter.registry import Registry

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


@dataclass
class _Chain:
    """Weighted layers of a feed-forward net with only channel-wise ops (ReLU, max-pool, flatten) between them.

    weights[i]: [out_i, in_i, *rest] (a Linear is viewed as [out, in, 1]; a Linear after a conv stack as
    [out, C, S] with S = spatial positions per channel, channel-major as `flatten` lays them out).
    foldable[i]: a constant unit between layers i and i+1 can be folded into bias i+1 (layer i+1 is a Linear;
    through a zero-padded conv a constant map is not constant at the borders, so there only zeros go).
    """

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    foldable: list[bool]


def _shrink(chain: _Chain) -> _Chain:
    ws, bs = list(chain.weights), list(chain.biases)
    for i in range(len(ws) - 1):  # forward: dead-in units are constants relu(b)
        dead = (ws[i].flatten(1) == 0).all(dim=1)
        const = torch.relu(bs[i])
        remove = dead & (torch.tensor(chain.foldable[i]) | (const == 0))
        bs[i + 1] = bs[i + 1] + ws[i + 1][:, remove].flatten(2).sum(2) @ const[remove]
        ws[i], bs[i], ws[i + 1] = ws[i][~remove], bs[i][~remove], ws[i + 1][:, ~remove]
    for i in range(len(ws) - 1, 0, -1):  # backward: dead-out units contribute nothing
        dead = (ws[i].transpose(0, 1).flatten(1) == 0).all(dim=1)
        ws[i], ws[i - 1], bs[i - 1] = ws[i][:, ~dead], ws[i - 1][~dead], bs[i - 1][~dead]
    return _Chain(ws, bs, chain.foldable)


def _masked(model: nn.Module, mask: Mask | None, layers: list[tuple[str, nn.Module]]):
    ws, bs = [], []
    for name, layer in layers:
        m = mask.get(f"{name}.weight") if mask is not None else None
        w = layer.weight.detach().clone()
        ws.append(w * m.to(w.dtype) if m is not None else w)
        bs.append(layer.bias.detach().clone())
    return ws, bs


def _load(model: nn.Module, kinds: tuple, ws: list[torch.Tensor], bs: list[torch.Tensor], like: torch.Tensor):
    model.to(like.dtype)
    with torch.no_grad():
        for layer, w, b in zip([m for m in model.modules() if isinstance(m, kinds)], ws, bs):
            layer.weight.copy_(w.reshape(layer.weight.shape))
            layer.bias.copy_(b)
    return model


def _mlp_structured(model: MLP, mask: Mask | None) -> MLP:
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    ws, bs = _masked(model, mask, layers)
    c = _shrink(_Chain([w.unsqueeze(2) for w in ws], bs, [True] * (len(ws) - 1)))
    small = MLP(ws[0].shape[1], [w.shape[0] for w in c.weights[:-1]], ws[-1].shape[0], init="torch_default")
    return _load(small, (nn.Linear,), c.weights, c.biases, ws[0])


def _conv_chain(model: nn.Module, mask: Mask | None, conv_kind: type):
    """(shrunk chain, number of convs) of a `features` conv stack followed by a `classifier` of Linears."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (conv_kind, nn.Linear))]
    n_conv = sum(isinstance(m, conv_kind) for _, m in layers)
    ws, bs = _masked(model, mask, layers)
    channels = ws[n_conv - 1].shape[0]
    ws[n_conv] = ws[n_conv].view(ws[n_conv].shape[0], channels, -1)
    ws[n_conv + 1:] = [w.unsqueeze(2) for w in ws[n_conv + 1:]]
    foldable = [isinstance(m, nn.Linear) for _, m in layers[1:]]
    return _shrink(_Chain(ws, bs, foldable)), n_conv, ws[0]


def _convnet_structured(model: ConvNet, mask: Mask | None) -> ConvNet:
    c, n_conv, like = _conv_chain(model, mask, nn.Conv2d)
    widths = [w.shape[0] for w in c.weights[:n_conv]]
    small = ConvNet(model.in_channels, model.side, widths, [w.shape[0] for w in c.weights[n_conv:-1]],
                    c.weights[-1].shape[0], init="torch_default")
    return _load(small, (nn.Conv2d, nn.Linear), c.weights, c.biases, like)


def _cnn1d_structured(model: CNN1D, mask: Mask | None) -> CNN1D:
    c, n_conv, like = _conv_chain(model, mask, nn.Conv1d)
    if n_conv != len(c.weights) - 1:
        raise TypeError("CNN1D with more than one Linear layer is not an lth CNN1D")
    small = CNN1D(model.length, [w.shape[0] for w in c.weights[:n_conv]], c.weights[-1].shape[0], "torch_default")
    return _load(small, (nn.Conv1d, nn.Linear), c.weights, c.biases, like)


STRUCTURED: Registry = Registry("structured export")
STRUCTURED.register(MLP.__name__)(_mlp_structured)
STRUCTURED.register(ConvNet.__name__)(_convnet_structured)
STRUCTURED.register(CNN1D.__name__)(_cnn1d_structured)


@torch.no_grad()
def structured(model: nn.Module, mask: Mask | None = None) -> nn.Module:
    """A smaller dense model of the same class whose outputs equal `model`'s with `mask` applied
    (mask=None: the zeros already in the weights). Handles MLP (mlp, lenet_300_100), ConvNet (conv2/4/6)
    and CNN1D (mnist1d_cnn); BatchNorm and residual models (vgg, resnet20) are refused."""
    kind = type(model).__name__
    if kind not in STRUCTURED:
        raise TypeError(f"structured export has no rule for {kind}; handled: {', '.join(STRUCTURED.names())}")
    with warnings.catch_warnings():  # a layer may lose every unit; its outputs are then its folded bias
        warnings.filterwarnings("ignore", "Initializing zero-element tensors is a no-op")
        return STRUCTURED.get(kind)(model, mask)


def structured_mlp(model: MLP, mask: Mask | None = None) -> MLP:
    """`structured` for an lth MLP only."""
    if not isinstance(model, MLP):
        raise TypeError(f"structured_mlp takes an lth MLP (mlp, lenet_300_100), got {type(model).__name__}")
    return structured(model, mask)


def linear_macs(model: nn.Module, mask: Mask | None = None) -> int:
    """Multiply-adds of one sample through the Linear layers; with a mask, only unmasked weights count."""
    total = 0
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            key = f"{name}.weight"
            total += int(mask[key].sum()) if mask is not None and key in mask else m.weight.numel()
    return total
