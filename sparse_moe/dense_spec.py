"""A dense FFN read out of a model, in the `Experts` layout, and the checks `moefy` runs on it.

`DenseSpec` holds w1 [d, mult*f] (gated: [gate | up] side by side, as `Experts` stores them), w2 [f, d], biases and
the `ACTIVATIONS` name. Activations are identified by value on a probe (`identify_activation`), so a module or a
function from any library (transformers' ACT2FN, timm's act layers, F.relu) is recognised without importing it.
`read_children` reads the plain layout: an nn.Sequential or module whose children are Linear(d->f), activation,
[Dropout], Linear(f->d), [Dropout] (nanoGPT's MLP).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .experts import ACTIVATIONS

BASE_ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu")  # identified by value; gelu vs gelu_tanh differ by ~5e-4
GATED = {"silu": "swiglu", "gelu": "geglu", "gelu_tanh": "geglu_tanh", "relu": "reglu"}


@dataclass
class DenseSpec:
    """One dense FFN: w1 [d, mult*f], b1 [mult*f] | None, w2 [f, d], b2 [d] | None, the ACTIVATIONS name, its
    output dropout (kept after the MoE layer) and the p of its hidden dropout (experts have none)."""

    w1: torch.Tensor
    b1: torch.Tensor | None
    w2: torch.Tensor
    b2: torch.Tensor | None
    activation: str
    out_dropout: nn.Module | None = None
    hidden_dropout: float = 0.0

    @property
    def d_model(self) -> int:
        return self.w1.shape[0]

    @property
    def d_ff(self) -> int:
        return self.w2.shape[0]

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The dense function x [n, d] -> [n, d] this spec describes (dropout off)."""
        return F.linear(ACTIVATIONS.get(self.activation).fn(F.linear(x, self.w1.t(), self.b1)), self.w2.t(), self.b2)


def describe(module: nn.Module) -> str:
    kids = ", ".join(f"{n}: {type(c).__name__}" for n, c in module.named_children())
    return f"{type(module).__name__}({kids})"


def identify_activation(fn: Callable) -> str | None:
    """The BASE_ACTIVATIONS name whose values `fn` (a module or function) reproduces on [-6, 6], or None."""
    x = torch.linspace(-6, 6, 97, dtype=torch.float64)
    try:
        with torch.no_grad():
            y = fn(x)
    except Exception:  # noqa: BLE001  (not an elementwise activation)
        return None
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        return None
    for name in BASE_ACTIVATIONS:
        if torch.allclose(y.to(torch.float64), ACTIVATIONS.get(name).fn(x), rtol=1e-5, atol=1e-6):
            return name
    return None


def computes(probe: Callable[[torch.Tensor], torch.Tensor], module: nn.Module, spec: DenseSpec) -> bool:
    """Does probe(x) (the module's FFN path, in eval mode) equal the spec's function on random x [4, d]?"""
    g = torch.Generator().manual_seed(0)  # the caller's global RNG stays untouched
    x = torch.randn(4, spec.d_model, generator=g).to(device=spec.w1.device, dtype=spec.w1.dtype)
    was = module.training
    try:
        module.eval()
        with torch.no_grad():
            out = probe(x)
    except Exception:  # noqa: BLE001  (a forward that cannot take [n, d] is not an FFN we can replace)
        return False
    finally:
        module.train(was)
    return isinstance(out, torch.Tensor) and out.shape == x.shape and torch.allclose(
        out, spec.reference(x), rtol=1e-4, atol=1e-5)


def read_children(module: nn.Module) -> DenseSpec | None:
    """Linear(d->f), activation, [Dropout], Linear(f->d), [Dropout] as children (nn.Identity ignored), or None."""
    kids = [c for c in module.children() if not isinstance(c, nn.Identity)]
    if len(kids) < 3 or not isinstance(kids[0], nn.Linear) or not isinstance(kids[1], nn.Module):
        return None
    act = identify_activation(kids[1]) if not isinstance(kids[1], (nn.Linear, nn.Dropout)) else None
    if act is None:
        return None
    rest, hidden = kids[2:], 0.0
    if isinstance(rest[0], nn.Dropout):
        hidden, rest = rest[0].p, rest[1:]
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
    return DenseSpec(fc1.weight.detach().t(), b1, fc2.weight.detach().t(), b2, act, out_dropout, hidden)
