"""Recognise a dense FFN module and read its weights in the `Experts` layout, for `moefy`.

Recognised: `sparse_moe.DenseFFN`; an nn.Sequential or any module whose children, in registration order and
ignoring nn.Identity, are Linear(d->f), activation (nn.GELU, nn.ReLU, nn.SiLU), [Dropout(p=0)], Linear(f->d),
[Dropout] (nanoGPT's MLP, timm's Mlp). A module that is not an nn.Sequential is checked on a probe: its forward
must compute fc2(act(fc1(x))), or it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .experts import ACTIVATIONS, DenseFFN

# Module type -> ACTIVATIONS name; exact GELU only (the tanh approximation is another function).
ACTIVATION_MODULES: dict[type[nn.Module], str] = {nn.GELU: "gelu", nn.ReLU: "relu", nn.SiLU: "silu"}
EXPECTED = "Linear(d->f), GELU/ReLU/SiLU, [Dropout(p=0)], Linear(f->d), [Dropout] or a sparse_moe.DenseFFN"


@dataclass
class DenseSpec:
    """One dense FFN: w1 [d, f], b1 [f] | None, w2 [f, d], b2 [d] | None, the activation's ACTIVATIONS name,
    and its output dropout (kept after the MoE layer)."""

    w1: torch.Tensor
    b1: torch.Tensor | None
    w2: torch.Tensor
    b2: torch.Tensor | None
    activation: str
    out_dropout: nn.Module | None = None

    @property
    def d_model(self) -> int:
        return self.w1.shape[0]

    @property
    def d_ff(self) -> int:
        return self.w2.shape[0]

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The dense function x [n, d] -> [n, d] this spec describes (dropout off)."""
        return F.linear(ACTIVATIONS.get(self.activation).fn(F.linear(x, self.w1.t(), self.b1)), self.w2.t(), self.b2)


def _describe(module: nn.Module) -> str:
    kids = ", ".join(f"{n}: {type(c).__name__}" for n, c in module.named_children())
    return f"{type(module).__name__}({kids})"


def _activation(module: nn.Module) -> str | None:
    name = ACTIVATION_MODULES.get(type(module))
    if name == "gelu" and module.approximate != "none":
        return None
    return name


def _from_children(module: nn.Module) -> DenseSpec | None:
    kids = [c for c in module.children() if not isinstance(c, nn.Identity)]
    if len(kids) < 3 or not isinstance(kids[0], nn.Linear) or _activation(kids[1]) is None:
        return None
    rest = kids[2:]
    if isinstance(rest[0], nn.Dropout):
        if rest[0].p > 0:  # experts have no hidden dropout: the MoE would train a different function
            return None
        rest = rest[1:]
    if not rest or not isinstance(rest[0], nn.Linear) or len(rest) > 2:
        return None
    fc1, fc2 = kids[0], rest[0]
    out_dropout = rest[1] if len(rest) == 2 else None
    if out_dropout is not None and not isinstance(out_dropout, nn.Dropout):
        return None
    if fc1.out_features != fc2.in_features or fc2.out_features != fc1.in_features:
        return None
    b1 = None if fc1.bias is None else fc1.bias.detach()
    b2 = None if fc2.bias is None else fc2.bias.detach()
    return DenseSpec(fc1.weight.detach().t(), b1, fc2.weight.detach().t(), b2, _activation(kids[1]), out_dropout)


def _computes(module: nn.Module, spec: DenseSpec) -> bool:
    """Does module(x) equal the spec's function on a probe? (Child order need not be call order.)"""
    g = torch.Generator().manual_seed(0)  # the caller's global RNG stays untouched
    x = torch.randn(4, spec.d_model, generator=g).to(device=spec.w1.device, dtype=spec.w1.dtype)
    was = module.training
    try:
        module.eval()
        with torch.no_grad():
            out = module(x)
    except Exception:  # noqa: BLE001  (a forward that cannot take [n, d] is not an FFN we can replace)
        return False
    finally:
        module.train(was)
    return isinstance(out, torch.Tensor) and out.shape == x.shape and torch.allclose(out, spec.reference(x),
                                                                                      rtol=1e-4, atol=1e-5)


def ffn_spec(name: str, module: nn.Module) -> DenseSpec:
    """The dense FFN `module` (named `name` in its model) computes; ValueError naming what it found otherwise."""
    if isinstance(module, DenseFFN):
        b1 = None if module.b1 is None else module.b1.detach()
        b2 = None if module.b2 is None else module.b2.detach()
        act = next(n for n in ACTIVATIONS if ACTIVATIONS.get(n).fn is module.act)
        return DenseSpec(module.w1.detach(), b1, module.w2.detach(), b2, act)
    spec = _from_children(module)
    if spec is None:
        raise ValueError(f"moefy: module {name!r} is not a dense FFN it can convert; expected {EXPECTED}, "
                         f"found {_describe(module)}")
    if not isinstance(module, nn.Sequential) and not _computes(module, spec):
        raise ValueError(f"moefy: module {name!r} ({_describe(module)}) has FFN children but its forward does not "
                         "compute fc2(act(fc1(x))) on a probe; convert it by hand with MoELayer")
    return spec
