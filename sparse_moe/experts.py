"""Stacked expert weights and the dense FFN they generalise.

Expert e computes `act(x @ w1[e] + b1[e]) @ w2[e] + b2[e]`, x [n, d] -> [n, d]. Weights are stacked as
w1 [E, d, f_in] and w2 [E, f, d] (f_in = 2f for gated activations: gate and up halves side by side).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from meter.registry import Registry


@dataclass(frozen=True)
class Activation:
    """fn: h [n, mult * f] -> [n, f]; backward(h, grad_out) -> grad_h, the same ops autograd would run
    (used by the fused expert kernel, which runs each expert's FFN backward by hand)."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    mult: int
    backward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _swiglu(h: torch.Tensor) -> torch.Tensor:
    gate, up = h.chunk(2, dim=-1)
    return F.silu(gate) * up


def _swiglu_backward(h: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    gate, up = h.chunk(2, dim=-1)
    return torch.cat([torch.ops.aten.silu_backward(grad * up, gate), grad * F.silu(gate)], dim=-1)


def _gelu_backward(h: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten.gelu_backward(grad, h)


def _relu_backward(h: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten.threshold_backward(grad, h, 0)


def _silu_backward(h: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten.silu_backward(grad, h)


# Module-level functions, not lambdas: a model holding them stays picklable (torch.save(model), spawn).
ACTIVATIONS: Registry[Activation] = Registry("activation")
ACTIVATIONS.register("gelu")(Activation(F.gelu, 1, _gelu_backward))
ACTIVATIONS.register("relu")(Activation(F.relu, 1, _relu_backward))
ACTIVATIONS.register("silu")(Activation(F.silu, 1, _silu_backward))
ACTIVATIONS.register("swiglu")(Activation(_swiglu, 2, _swiglu_backward))


def _gelu_tanh(h: torch.Tensor) -> torch.Tensor:
    return F.gelu(h, approximate="tanh")


def _gelu_tanh_backward(h: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten.gelu_backward(grad, h, approximate="tanh")


def _glu(act: Callable, h: torch.Tensor) -> torch.Tensor:
    """Gated: act(gate) * up, h = [gate | up] [n, 2f] -> [n, f]."""
    gate, up = h.chunk(2, dim=-1)
    return act(gate) * up


def _glu_backward(act: Callable, act_backward: Callable, h: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    gate, up = h.chunk(2, dim=-1)
    return torch.cat([act_backward(gate, grad * up), grad * act(gate)], dim=-1)


# GPT-2's gelu_new / T5 v1.1's gated-gelu (tanh approximation), and the gated GELU/ReLU FFNs (GEGLU, ReGLU;
# Shazeer 2020) that moefy upcycles from transformers and timm models. partial() of module-level functions pickles.
ACTIVATIONS.register("gelu_tanh")(Activation(_gelu_tanh, 1, _gelu_tanh_backward))
for _name, _fn, _bwd in (("geglu", F.gelu, _gelu_backward), ("geglu_tanh", _gelu_tanh, _gelu_tanh_backward),
                         ("reglu", F.relu, _relu_backward)):
    ACTIVATIONS.register(_name)(Activation(partial(_glu, _fn), 2, partial(_glu_backward, _fn, _bwd)))


class Experts(nn.Module):
    """E independent FFNs with stacked parameters; the dispatch backends decide how rows reach them."""

    def __init__(self, num_experts: int, d_model: int, d_ff: int, activation: str = "gelu", bias: bool = False):
        super().__init__()
        self.activation = ACTIVATIONS.get(activation)
        self.act, mult = self.activation.fn, self.activation.mult
        self.num_experts, self.d_model, self.d_ff, self.d_in = num_experts, d_model, d_ff, mult * d_ff
        self.w1 = nn.Parameter(torch.empty(num_experts, d_model, self.d_in))
        self.w2 = nn.Parameter(torch.empty(num_experts, d_ff, d_model))
        self.b1 = nn.Parameter(torch.zeros(num_experts, self.d_in)) if bias else None
        self.b2 = nn.Parameter(torch.zeros(num_experts, d_model)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's default (kaiming-uniform, fan_in) applied per expert.
        nn.init.uniform_(self.w1, -1 / math.sqrt(self.d_model), 1 / math.sqrt(self.d_model))
        nn.init.uniform_(self.w2, -1 / math.sqrt(self.d_ff), 1 / math.sqrt(self.d_ff))

    def row_flops(self) -> int:
        """Forward matmul FLOPs of one row through one expert (2 per multiply-add)."""
        return 2 * self.d_model * self.d_in + 2 * self.d_ff * self.d_model

    def expert_forward(
        self,
        x: torch.Tensor,
        w1: torch.Tensor,
        w2: torch.Tensor,
        b1: torch.Tensor | None = None,
        b2: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One expert on rows x [n, d] given its own weight slices -> [n, d]."""
        h = x @ w1
        if b1 is not None:
            h = h + b1
        out = self.act(h) @ w2
        return out if b2 is None else out + b2


class DenseFFN(nn.Module):
    """The dense FFN an MoE layer replaces: `act(x @ w1 + b1) @ w2 + b2`, x [..., d] -> [..., d].

    Same parameter layout as one expert, so E = 1 / k = 1 MoE equals it exactly (see tests).
    """

    def __init__(self, d_model: int, d_ff: int, activation: str = "gelu", bias: bool = False):
        super().__init__()
        activation_ = ACTIVATIONS.get(activation)
        self.act, mult = activation_.fn, activation_.mult
        self.d_model, self.d_ff, self.d_in = d_model, d_ff, mult * d_ff
        self.w1 = nn.Parameter(torch.empty(d_model, self.d_in))
        self.w2 = nn.Parameter(torch.empty(d_ff, d_model))
        self.b1 = nn.Parameter(torch.zeros(self.d_in)) if bias else None
        self.b2 = nn.Parameter(torch.zeros(d_model)) if bias else None
        nn.init.uniform_(self.w1, -1 / math.sqrt(d_model), 1 / math.sqrt(d_model))
        nn.init.uniform_(self.w2, -1 / math.sqrt(d_ff), 1 / math.sqrt(d_ff))

    def row_flops(self) -> int:
        return 2 * self.d_model * self.d_in + 2 * self.d_ff * self.d_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        h = x.reshape(-1, self.d_model) @ self.w1
        if self.b1 is not None:
            h = h + self.b1
        out = self.act(h) @ self.w2
        if self.b2 is not None:
            out = out + self.b2
        return out.reshape(shape)
