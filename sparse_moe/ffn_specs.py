"""FFN specs: where a model's dense FFN keeps its projections, so `moefy` can read it and swap in experts.

An `FFNSpec` names, relative to the matched module: `up` (x -> [.., f]), `gate` for gated FFNs
(act(gate(x)) * up(x); or `fused_gate="first"|"last"`: up returns [gate|up] / [up|gate] halves, timm's GluMlp),
`down`, the activation `act` (module or function attribute, identified by value; `activation=` when there is no
attribute), `hidden_dropout` (between activation and down: experts have none), `out_dropout` (kept after the MoE),
`transposed` (weights stored [in, out], GPT-2's Conv1D) and how the MoE goes in: the submodule `replace`d by the
MoEFFN ("" = the matched module) and the submodules set to nn.Identity (`identity`). BERT's FFN is split over
`intermediate` and `output`: the MoE replaces `intermediate`, `output.dense` becomes Identity, and BertOutput's
dropout, residual and LayerNorm stay outside the experts.

A spec matches a module whose class (or a base class) is named in `classes` (names, so nothing imports transformers
or timm) and that has every path; `classes=()` matches by structure alone. A match is then checked on a probe: the
module's FFN path must compute the function read from its weights, or the next candidate is tried. Your own FFN:

    FFN_SPECS.register("my_mlp")(FFNSpec(classes=("MyMLP",), up="w_in", down="w_out", act="nonlin"))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from meter.registry import Registry

from .dense_spec import GATED, DenseSpec, computes, describe, identify_activation, read_children
from .experts import ACTIVATIONS, DenseFFN

Probe = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def _get(module: nn.Module, path: str):
    """The attribute at dotted `path` ("" = module itself); AttributeError if absent."""
    obj = module
    for part in filter(None, path.split(".")):
        obj = getattr(obj, part)
    return obj


def _has(module: nn.Module, path: str) -> bool:
    try:
        _get(module, path)
    except AttributeError:
        return False
    return True


def _set(module: nn.Module, path: str, value: nn.Module) -> None:
    parent, _, child = path.rpartition(".")
    setattr(_get(module, parent), child, value)


def _call(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return module(x)


@dataclass(frozen=True)
class FFNSpec:
    """Where one kind of dense FFN keeps its parts (module docstring). Paths are relative to the matched module."""

    up: str
    down: str
    classes: tuple[str, ...] = ()
    gate: str | None = None
    fused_gate: str | None = None  # "first" | "last": which half of up's output is the gate
    act: str | None = None
    activation: str | None = None  # a BASE_ACTIVATIONS name when there is no `act` attribute
    hidden_dropout: tuple[str, ...] = ()
    out_dropout: str | None = None
    transposed: bool = False
    must_be_identity: tuple[str, ...] = ()  # e.g. timm's hidden `norm`: a real norm is not an expert FFN
    replace: str = ""
    identity: tuple[str, ...] = ()
    probe: Probe = _call
    install_fn: Callable[[nn.Module, nn.Module], nn.Module] | None = None  # (module, moe) -> replacement
    when: Callable[[nn.Module], bool] | None = None

    def matches(self, module: nn.Module) -> bool:
        if self.classes and not {c.__name__ for c in type(module).__mro__} & set(self.classes):
            return False
        paths = [self.up, self.down, self.gate, self.act, self.out_dropout, *self.hidden_dropout,
                 *self.must_be_identity]
        return all(_has(module, p) for p in paths if p) and (self.when is None or self.when(module))

    def _weight(self, module: nn.Module, path: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Projection at `path` as (W [in, out], bias [out] | None)."""
        lin = _get(module, path)
        w = lin.weight.detach()
        if w.dim() != 2:
            raise ValueError(f"projection {path!r} has a {w.dim()}-d weight ({type(lin).__name__}); need 2-d")
        return (w if self.transposed else w.t()), (None if lin.bias is None else lin.bias.detach())

    def read(self, module: nn.Module) -> DenseSpec | None:
        """The dense FFN in `Experts` layout, or None when the parts do not fit (act unknown, norm inside...)."""
        if any(not isinstance(_get(module, p), nn.Identity) for p in self.must_be_identity):
            return None
        base = identify_activation(_get(module, self.act)) if self.act else self.activation
        if base is None:
            return None
        w_up, b_up = self._weight(module, self.up)
        w2, b2 = self._weight(module, self.down)
        gated = self.gate is not None or self.fused_gate is not None
        if self.gate is not None:
            (w_g, b_g), (w_u, b_u) = self._weight(module, self.gate), (w_up, b_up)
        elif self.fused_gate is not None:
            f = w_up.shape[1] // 2
            halves = [(w_up[:, :f], None if b_up is None else b_up[:f]), (w_up[:, f:], None if b_up is None else b_up[f:])]
            (w_g, b_g), (w_u, b_u) = halves if self.fused_gate == "first" else halves[::-1]
        if gated:
            if w_g.shape != w_u.shape:
                return None
            w1 = torch.cat([w_g, w_u], dim=1)
            b1 = None if b_g is None and b_u is None else torch.cat([
                b if b is not None else w_g.new_zeros(w_g.shape[1]) for b in (b_g, b_u)])
        else:
            w1, b1 = w_up, b_up
        if w1.shape[0] != w2.shape[1] or w1.shape[1] != (2 if gated else 1) * w2.shape[0]:
            return None
        hidden = max((_get(module, p).p for p in self.hidden_dropout), default=0.0)
        out_dropout = _get(module, self.out_dropout) if self.out_dropout else None
        return DenseSpec(w1, b1, w2, b2, GATED[base] if gated else base, out_dropout, hidden)

    def install(self, module: nn.Module, moe: nn.Module) -> nn.Module:
        """Put `moe` (a MoEFFN) in place inside `module`; returns what replaces `module` in its parent."""
        if self.install_fn is not None:
            return self.install_fn(module, moe)
        for path in self.identity:
            _set(module, path, nn.Identity().train(module.training))
        if not self.replace:
            return moe
        _set(module, self.replace, moe)
        return module


class ChildrenSpec:
    """Fallback by structure: an nn.Sequential or module whose children are Linear, act, [Dropout], Linear,
    [Dropout] (`read_children`); a non-Sequential module must also compute that on the probe."""

    classes: tuple[str, ...] = ()

    def matches(self, module: nn.Module) -> bool:
        return any(isinstance(c, nn.Linear) for c in module.children())

    def read(self, module: nn.Module) -> DenseSpec | None:
        return read_children(module)

    def probe(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return read_children(module).reference(x) if isinstance(module, nn.Sequential) else module(x)

    def install(self, module: nn.Module, moe: nn.Module) -> nn.Module:
        return moe


class DenseFFNSpec(ChildrenSpec):
    """sparse_moe.DenseFFN: already in the Experts layout."""

    classes = ("DenseFFN",)

    def matches(self, module: nn.Module) -> bool:
        return isinstance(module, DenseFFN)

    def read(self, module: DenseFFN) -> DenseSpec:
        act = next(n for n in ACTIVATIONS if ACTIVATIONS.get(n).fn is module.act)
        return DenseSpec(module.w1.detach(), None if module.b1 is None else module.b1.detach(), module.w2.detach(),
                         None if module.b2 is None else module.b2.detach(), act)

    def probe(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return module(x)


class MoETransformerEncoderLayer(nn.TransformerEncoderLayer):
    """nn.TransformerEncoderLayer whose feed-forward block is `self.moe` (a MoEFFN), then dropout2. moefy sets
    `activation_relu_or_gelu = 0`, which keeps torch's fused fast path (it reads linear1/linear2) off."""

    def _ff_block(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_nested:  # nn.TransformerEncoder's no-grad fast path packs padded batches: route the real tokens
            parts = x.unbind()
            y = self.moe(torch.cat(parts)).split([p.shape[0] for p in parts])
            return self.dropout2(torch.nested.as_nested_tensor(list(y)))
        return self.dropout2(self.moe(x))


class MoETransformerDecoderLayer(nn.TransformerDecoderLayer):
    """nn.TransformerDecoderLayer whose feed-forward block is `self.moe`, then dropout3."""

    def _ff_block(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout3(self.moe(x))


_MOE_LAYER_CLASS = {nn.TransformerEncoderLayer: MoETransformerEncoderLayer,
                    nn.TransformerDecoderLayer: MoETransformerDecoderLayer}


def _install_ff_block(module: nn.Module, moe: nn.Module) -> nn.Module:
    if type(module) not in _MOE_LAYER_CLASS:
        raise ValueError(f"moefy: {type(module).__name__} subclasses a torch transformer layer; its _ff_block may "
                         "differ, so convert it with an FFN spec of its own (sparse_moe.FFN_SPECS)")
    module.__class__ = _MOE_LAYER_CLASS[type(module)]
    del module.linear1, module.linear2, module.dropout  # the dense FFN is gone; dropout2/3 stay
    module.moe = moe
    module.activation_relu_or_gelu = 0
    return module


def _ff_block(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return module._ff_block(x)


def _split_ffn(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return module.output.dense(module.intermediate(x))


def _gate_last(module: nn.Module) -> bool:
    return bool(getattr(module, "gate_last", True)) and getattr(module, "chunk_dim", -1) == -1


def _gate_first(module: nn.Module) -> bool:
    return not getattr(module, "gate_last", True) and getattr(module, "chunk_dim", -1) == -1


FFN_SPECS: Registry[FFNSpec | ChildrenSpec] = Registry("FFN spec (sparse_moe.ffn_specs.FFN_SPECS)")
_r = FFN_SPECS.register
_r("dense_ffn")(DenseFFNSpec())
# transformers: Llama, Mistral, Qwen2/3, Gemma, OLMo... (gate_proj, up_proj, down_proj, act_fn; SwiGLU/GeGLU).
_r("hf_llama_mlp")(FFNSpec(up="up_proj", gate="gate_proj", down="down_proj", act="act_fn"))
# GPT-2: Conv1D weights are stored [in, out]; resid dropout after c_proj stays after the MoE.
_r("hf_gpt2_mlp")(FFNSpec(up="c_fc", down="c_proj", act="act", out_dropout="dropout", transposed=True))
_r("hf_t5_dense_act_dense")(FFNSpec(up="wi", down="wo", act="act", hidden_dropout=("dropout",)))
_r("hf_t5_dense_gated_act_dense")(FFNSpec(up="wi_1", gate="wi_0", down="wo", act="act", hidden_dropout=("dropout",)))
# BERT/RoBERTa/ELECTRA layers (and ViT before transformers 5): FFN split over intermediate and output.
_r("hf_bert_layer")(FFNSpec(up="intermediate.dense", down="output.dense", act="intermediate.intermediate_act_fn",
                            replace="intermediate", identity=("output.dense",), probe=_split_ffn))
_r("hf_vit_mlp")(FFNSpec(classes=("ViTMLP",), up="fc1", down="fc2", act="activation_fn"))
_timm = {"up": "fc1", "down": "fc2", "act": "act", "hidden_dropout": ("drop1",), "out_dropout": "drop2",
         "must_be_identity": ("norm",)}
_r("timm_mlp")(FFNSpec(classes=("Mlp",), **_timm))
_r("timm_glu_mlp")(FFNSpec(classes=("GluMlp",), fused_gate="last", when=_gate_last, **_timm))
_r("timm_glu_mlp_gate_first")(FFNSpec(classes=("GluMlp",), fused_gate="first", when=_gate_first, **_timm))
_r("timm_swiglu")(FFNSpec(classes=("SwiGLU",), **{**_timm, "up": "fc1_x"}, gate="fc1_g"))
_r("torch_transformer_layer")(FFNSpec(
    classes=("TransformerEncoderLayer", "TransformerDecoderLayer"), up="linear1", down="linear2", act="activation",
    hidden_dropout=("dropout",), probe=_ff_block, install_fn=_install_ff_block))
_r("sequential")(ChildrenSpec())  # explicit match only: any Sequential would match by structure

AUTO_EXCLUDED = ("sequential",)


def candidates(module: nn.Module, auto: bool = False) -> list[str]:
    """Names of the specs matching `module`: class-named specs first, structural ones next, `sequential` last."""
    names = [n for n in FFN_SPECS if not (auto and n in AUTO_EXCLUDED) and FFN_SPECS.get(n).matches(module)]
    return sorted(names, key=lambda n: (not FFN_SPECS.get(n).classes, n in AUTO_EXCLUDED))


def find_spec(name: str, module: nn.Module) -> tuple[FFNSpec | ChildrenSpec, DenseSpec]:
    """The first matching spec whose reading the module's forward confirms on a probe; ValueError otherwise."""
    tried = []
    for spec_name in candidates(module):
        spec = FFN_SPECS.get(spec_name)
        dense = spec.read(module)
        if dense is not None and computes(lambda x, s=spec: s.probe(module, x), module, dense):
            return spec, dense
        why = "its parts do not fit (shapes, activation, a norm inside)" if dense is None else "its forward differs"
        tried.append(f"{spec_name}: {why}")
    how = "; ".join(tried) if tried else "no spec matches its class or structure"
    raise ValueError(f"moefy: module {name!r} ({describe(module)}) is not a dense FFN moefy can convert ({how}). "
                     f"Registered FFN specs: {', '.join(FFN_SPECS.names())}; add one with "
                     "sparse_moe.FFN_SPECS.register(name)(FFNSpec(...)) (sparse_moe/ffn_specs.py)")
