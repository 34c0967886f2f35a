"""Tickets on pretrained transformers: which weights a preset prunes (`PRESETS`, `preset_names`), a `LotteryTicket`
rewinding to the loaded checkpoint (`pretrained_ticket`), and fresh copies initialised as the library does
(`reinit_like`, for the random-reinit baseline).

Chen et al. 2020, "The Lottery Ticket Hypothesis for Pre-trained BERT Networks" (preset "bert"):
  prunable   the encoder's attention (query, key, value, attention output) and FFN (intermediate, output) linear
             weights; embeddings, LayerNorms, biases and the task classifier are never pruned. Their released code
             (BERT-Tickets) also prunes `bert.pooler.dense`; here the pooler is excluded unless
             `include=["*pooler.dense.weight"]` adds it.
  pruning    IMP, global magnitude, 10% of the remaining weights per level (`strategy="magnitude_global",
             rates=0.1`), fine-tuning the whole network (masked) at each level.
  rewinding  to the pretrained weights theta_0 (`rewind="init"`: the loaded checkpoint), not to a random init;
             `rewind=k` (an int, "500it", "1ep") rewinds to step k of fine-tuning instead.
  baselines  random pruning (a random mask of the same density on the pretrained weights) and random
             reinitialisation (the ticket's mask on a freshly initialised network of the same config).

    ticket = pretrained_ticket(model, "bert", rewind="init", strategy="magnitude_global", rates=0.1)
    rows = run_imp(model, train, levels=3, names=ticket.names, rewind=0, strategy="magnitude_global", rates=0.1)

A preset selects the Linear weights (and GPT-2's `Conv1D`, and `nn.MultiheadAttention`'s packed input
projection) inside the model's stacked blocks: an `nn.ModuleList`, or an `nn.Sequential` of several modules of
one class (timm's `blocks`). Embeddings, the pooler and the task head live outside the blocks; LayerNorms and
biases are never Linear weights. `include` globs add weights, `exclude` globs remove them (globs override).
"""

from __future__ import annotations

import copy
import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from lth.ticket import LotteryTicket
from meter.registry import Registry

# Attention sub-modules by name across transformers (BERT `attention`, GPT-2 `attn`, Llama `self_attn`,
# T5 `SelfAttention`/`EncDecAttention`, timm `attn`, nn.TransformerEncoderLayer `self_attn`).
_ATTENTION = re.compile(r"(^|\.)(\w*attn\w*|\w*attention\w*)(\.|$)", re.IGNORECASE)


@dataclass(frozen=True)
class Preset:
    """Which linear weights of the stacked blocks a ticket prunes."""

    attention: bool = True
    ffn: bool = True
    exclude: tuple[str, ...] = ()  # globs removed before the user's own include/exclude


PRESETS: Registry[Preset] = Registry("ticket preset")
PRESETS.register("transformer")(Preset())  # attention + FFN of every block (encoders, decoders, both)
PRESETS.register("bert")(Preset(exclude=("*pooler*",)))  # Chen et al. 2020 (see the module docstring)
PRESETS.register("transformer_attention")(Preset(ffn=False))
PRESETS.register("transformer_ffn")(Preset(attention=False))


def _is_linear(module: nn.Module) -> bool:
    """nn.Linear, or a transposed linear layer such as transformers' GPT-2 `Conv1D` (checked by name: no import)."""
    return isinstance(module, nn.Linear) or (type(module).__name__ == "Conv1D" and hasattr(module, "nf"))


def _stacks(model: nn.Module) -> list[str]:
    """Names of the block containers: ModuleLists, and Sequentials of >= 2 non-linear modules of one class."""
    out = []
    for name, m in model.named_modules():
        kids = list(m.children())
        if isinstance(m, nn.ModuleList) and kids:
            out.append(name)
        elif isinstance(m, nn.Sequential) and len(kids) >= 2 and len({type(k) for k in kids}) == 1 \
                and not _is_linear(kids[0]) and any(_is_linear(x) for x in kids[0].modules()):
            out.append(name)
    return out


def block_linear_weights(model: nn.Module) -> list[str]:
    """Every linear weight inside the stacked blocks, in `named_parameters` order."""
    stacks = [s + "." for s in _stacks(model)]
    found = set()
    for name, m in model.named_modules():
        if not any(name.startswith(s) for s in stacks):
            continue
        if _is_linear(m):
            found.add(f"{name}.weight")
        elif isinstance(m, nn.MultiheadAttention):  # packed q/k/v projection: a Parameter, not a Linear
            found |= {f"{name}.{p}" for p in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")
                      if getattr(m, p, None) is not None}
    return [n for n, _ in model.named_parameters() if n in found]


def preset_names(model: nn.Module, preset: str = "transformer", include: Sequence[str] = (),
                 exclude: Sequence[str] = ()) -> list[str]:
    """The weights `preset` prunes in `model`, plus those matching `include` globs, minus `exclude` globs."""
    spec = PRESETS.get(preset)
    chosen = set()
    for name in block_linear_weights(model):
        is_attention = bool(_ATTENTION.search(name.rsplit(".", 1)[0]))
        if (spec.attention and is_attention) or (spec.ffn and not is_attention):
            chosen.add(name)
    chosen = {n for n in chosen if not any(fnmatch.fnmatch(n, p) for p in spec.exclude)}
    params = [n for n, _ in model.named_parameters()]
    chosen |= {n for n in params if any(fnmatch.fnmatch(n, p) for p in include)}
    names = [n for n in params if n in chosen and not any(fnmatch.fnmatch(n, p) for p in exclude)]
    if not names:
        raise ValueError(f"preset {preset!r} (include={list(include)}, exclude={list(exclude)}) selects no weight "
                         f"of {type(model).__name__}; its stacked blocks: {_stacks(model) or 'none found'}")
    return names


def pretrained_ticket(model: nn.Module, preset: str = "transformer", *, rewind: int | str = "init",
                      include: Sequence[str] = (), exclude: Sequence[str] = (), **ticket_kwargs) -> LotteryTicket:
    """A `LotteryTicket` over `preset_names(model, ...)`. `rewind="init"` snapshots the model as loaded (the
    pretrained weights are the rewind point: call it before any fine-tuning step); `rewind=k` rewinds to step k
    of fine-tuning (take the snapshot in your loop at `ticket.rewind_step`)."""
    names = preset_names(model, preset, include, exclude)
    at_init = rewind == "init"
    ticket = LotteryTicket(model, rewind=0 if at_init else rewind, names=names, **ticket_kwargs)
    if at_init:
        ticket.snapshot(0)
    return ticket


def reinit_like(model: nn.Module) -> Callable[[], nn.Module]:
    """A factory of fresh copies of `model`'s architecture, initialised as its library does (transformers'
    `_init_weights`, else each module's `reset_parameters`): the random-reinit baseline's network. Seed the global
    RNG before calling it (`lth.IMP.fresh` does)."""
    template = copy.deepcopy(model)

    def build() -> nn.Module:
        fresh = copy.deepcopy(template)
        init = getattr(fresh, "_init_weights", None)
        if callable(init):
            fresh.apply(init)
        else:
            for m in fresh.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        return fresh

    return build
