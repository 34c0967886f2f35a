"""`moefy`: turn the FFNs of an existing model into MoE layers, optionally upcycled from the dense weights.

    model = moefy(model, match="blocks.*.mlp", num_experts=8, top_k=1)   # in place; returns the model
    out = model(x)                                                         # same call signature as before
    loss = task_loss(out) + total_aux_loss(collect_aux(model))             # router losses, explicitly

Which modules are FFNs, and where their projections are, comes from the FFN-spec registry
(`sparse_moe.ffn_specs.FFN_SPECS`: transformers Llama/Mistral/Qwen2, GPT-2, T5, BERT/RoBERTa, ViT; timm Mlp, GluMlp,
SwiGLU; nn.TransformerEncoderLayer/DecoderLayer; nn.Sequential; DenseFFN). Gated FFNs give gated experts.

Sparse Upcycling (Komatsuzaki et al. 2022): every expert starts as a copy of the dense FFN it replaces. The
layer's output is sum_i w_i * expert_i(x), so it equals the dense FFN exactly when the k combine weights sum
to 1; the default `gate_norm="detached_sum"` makes their value sum to 1 while the router keeps Switch's task
gradient (see `sparse_moe.routers.GATE_NORMS`). With top_k = 1 the combine weight is p / p = 1.0 exactly, so at
step 0 the upcycled model computes the dense model's function: the same sums, in fp64 equal to rounding (the
per-expert matmuls run other BLAS kernels than one dense matmul; tests/sparse_moe/test_upcycle.py). With
gate_norm="none", Switch's top-1 output would be p * FFN(x), p ~ 1/E at init.

This holds only when no token is dropped: a capacity_factor below E / k (training) or eval_capacity_factor (eval)
can drop tokens, GShard's second_expert_policy="random" drops second choices, and expert-choice routing gives a
token 0 or several experts with their raw scores (moefy picks gate_norm="none" for it, the only one it takes).
moefy warns when the router can differ from the dense model at step 0, and refuses with strict=True.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable

import torch
from torch import nn

from .config import MoEConfig
from .dense_spec import DenseSpec
from .ffn_specs import FFN_SPECS, candidates, find_spec
from .layer import MoEAux, MoELayer
from .routers import ROUTERS

Match = str | Callable[[str, nn.Module], bool]


class MoEFFN(nn.Module):
    """Drop-in for a dense FFN module: x [..., d] -> y [..., d], a tensor like the module it replaced.

    The routing losses of the last forward wait in `aux` until `collect_aux(model)` takes them (the replaced
    module's callers expect a tensor, so they cannot be returned). `dropout` is the dense FFN's output dropout.
    """

    def __init__(self, layer: MoELayer, dropout: nn.Module | None = None) -> None:
        super().__init__()
        self.layer = layer
        self.dropout = dropout if dropout is not None else nn.Identity()
        self.aux: MoEAux | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, self.aux = self.layer(x)
        return self.dropout(y)

    def __getstate__(self):
        # A pending aux holds graph tensors, which neither deepcopy nor pickle accept: never part of the state.
        return {**self.__dict__, "aux": None}


def collect_aux(model: nn.Module) -> list[MoEAux]:
    """The `MoEAux` of every MoEFFN's last forward, in module order, and clears them (take once per step)."""
    auxes = []
    for m in model.modules():
        if isinstance(m, MoEFFN) and m.aux is not None:
            auxes.append(m.aux)
            m.aux = None
    return auxes


def _matcher(match: Match | None) -> Callable[[str, nn.Module], bool]:
    if match is None:  # every module a registered class/structure spec recognises
        return lambda name, module: bool(candidates(module, auto=True))
    if isinstance(match, str):
        return lambda name, module: fnmatch.fnmatchcase(name, match)
    return match


def _upcycle(layer: MoELayer, spec: DenseSpec) -> None:
    """Every expert := the dense FFN (weights laid out [d, f] / [f, d] like `Experts`)."""
    ex = layer.experts
    with torch.no_grad():
        ex.w1.copy_(spec.w1.expand_as(ex.w1))
        ex.w2.copy_(spec.w2.expand_as(ex.w2))
        if ex.b1 is not None:
            ex.b1.copy_(spec.b1.expand_as(ex.b1) if spec.b1 is not None else torch.zeros_like(ex.b1))
            ex.b2.copy_(spec.b2.expand_as(ex.b2) if spec.b2 is not None else torch.zeros_like(ex.b2))


def step0_differences(cfg: MoEConfig) -> list[str]:
    """Why an upcycled layer with this config may not compute the dense FFN at step 0 ([] = it does)."""
    reasons = []
    no_drop = cfg.num_experts / cfg.top_k  # capacity ceil(cf * k * T / E) >= T: no expert can overflow
    for key in ("capacity_factor", "eval_capacity_factor"):
        cf = getattr(cfg, key)
        if cf and cf < no_drop:
            reasons.append(f"{key}={cf} < num_experts/top_k={no_drop:g} can drop tokens (set it to None: dropless)")
    if cfg.router == "gshard" and cfg.second_expert_policy == "random":
        reasons.append("gshard's second_expert_policy='random' drops second choices in training (use 'all')")
    if not ROUTERS.get(cfg.router).token_choice:
        reasons.append(f"router {cfg.router!r} is expert choice: a token gets 0 or several experts, weighted by raw "
                       "scores (use a token-choice router, e.g. 'mixtral', for step-0 equality)")
    elif cfg.gate_norm == "none" and cfg.router != "hash":
        reasons.append("gate_norm='none' scales each output by router probabilities that do not sum to 1 "
                       "(use 'detached_sum')")
    return reasons


def _check_step0(cfg: MoEConfig, strict: bool) -> None:
    reasons = step0_differences(cfg)
    if not reasons:
        return
    msg = "moefy: the upcycled model will not equal the dense model at step 0: " + "; ".join(reasons)
    if strict:
        raise ValueError(msg + " (strict=True)")
    warnings.warn(msg, UserWarning, stacklevel=3)


def _record(model: nn.Module, recipe: dict) -> None:
    """Keep the recipe on the model (save_moefied re-applies it) and, for a transformers model, in its config."""
    recipes = [*getattr(model, "moefy_recipes", []), recipe]
    model.moefy_recipes = recipes
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json_string"):  # a transformers PretrainedConfig
        config.num_local_experts, config.num_experts_per_tok = recipe["num_experts"], recipe["top_k"]
        config.moefy_recipes = recipes


def moefy(
    model: nn.Module,
    match: Match | None = None,
    num_experts: int = 8,
    top_k: int = 1,
    upcycle: bool = True,
    router: str | None = None,
    every: int = 1,
    strict: bool = False,
    drop_hidden_dropout: bool = False,
    **options,
) -> nn.Module:
    """Replace every module whose qualified name matches `match` with a `MoEFFN`, in place; returns `model`.

    match: an fnmatch glob ("model.layers.*.mlp"), a predicate `(name, module) -> bool`, or None: every module a
    registered FFN spec recognises by class or structure (outermost only). every=n converts every n-th match
    (the 2nd, 4th, ...: every=2 is the paper's every-other-layer placement). A matched module must be an FFN of a
    registered spec (`sparse_moe.FFN_SPECS`), else a ValueError names it and the registry. An FFN with hidden
    dropout p > 0 (T5, nn.TransformerEncoderLayer) is refused unless drop_hidden_dropout=True (experts have no
    hidden dropout; eval outputs are unchanged). `options` are further `MoEConfig` fields. `router` None:
    "switch" for top_k = 1, "mixtral" otherwise. Upcycled token-choice layers default to gate_norm="detached_sum";
    strict=True refuses a configuration that can differ from the dense model at step 0 (module docstring), which
    otherwise warns. A transformers model's config gets num_local_experts, num_experts_per_tok and the recipe;
    `sparse_moe.save_moefied` / `load_moefied` round-trip the result. Parameters follow the FFN's device/dtype.
    """
    if every < 1:
        raise ValueError(f"moefy: every must be >= 1, got {every}")
    pred = _matcher(match)
    targets, inside = [], ()
    for name, m in model.named_modules():
        if name and not name.startswith(inside) and pred(name, m):
            targets.append((name, m))
            inside = tuple(n + "." for n, _ in targets)  # auto: a matched FFN's children are not FFNs of their own
    if not targets:
        names = ", ".join(name for name, _ in model.named_modules() if name)
        what = "no FFN a registered spec recognises" if match is None else f"match={match!r} matches no module"
        raise ValueError(f"moefy: {what} in {type(model).__name__} (specs: {', '.join(FFN_SPECS.names())}); "
                         f"modules: {names}")
    targets = targets[every - 1 :: every]
    router = router or ("switch" if top_k == 1 else "mixtral")
    if upcycle and ROUTERS.get(router).token_choice:
        options.setdefault("gate_norm", "detached_sum")
    cfg = MoEConfig(num_experts=num_experts, top_k=top_k, router=router, **options)
    if upcycle:
        _check_step0(cfg, strict)
    for name, module in targets:
        spec, dense = find_spec(name, module)
        if dense.hidden_dropout > 0 and not drop_hidden_dropout:
            raise ValueError(f"moefy: module {name!r} has hidden dropout p={dense.hidden_dropout} between its "
                             "activation and down projection; experts have none. Pass drop_hidden_dropout=True "
                             "(eval outputs unchanged, training loses that dropout) or set it to 0 in the model")
        layer = MoELayer(dense.d_model, dense.d_ff, num_experts, top_k=top_k, router=router,
                         activation=dense.activation, bias=dense.b1 is not None or dense.b2 is not None, **options)
        layer.to(device=dense.w1.device, dtype=dense.w1.dtype)
        if upcycle:
            _upcycle(layer, dense)
        moe = MoEFFN(layer, dense.out_dropout).train(module.training)
        replacement = spec.install(module, moe)
        if replacement is not module:
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, replacement)
    _record(model, {"targets": [n for n, _ in targets], "num_experts": num_experts, "top_k": top_k, "router": router,
                    "drop_hidden_dropout": drop_hidden_dropout, "options": options})
    return model
