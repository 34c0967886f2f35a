"""Routers: token-choice (switch, gshard, mixtral, deepseek_v3, hash) and expert-choice, in a registry.

Every router scores in fp32 with autocast disabled. It returns a `Routing`; token-choice routers fill
`expert`/`weight` [T, k] and the layer applies capacity; expert-choice fills the flat assignments itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from meter.registry import Registry

from .losses import data_parallel_world


class RouterSettings(Protocol):
    """What a router reads from its config (`sparse_moe.config.MoEConfig` has these fields). A protocol, not an
    import: config.py imports this module's registries, so importing config here would make a cycle."""

    num_experts: int
    top_k: int
    router_jitter: float
    router_init_scale: float
    second_expert_policy: str
    bias_update_rate: float


ROUTERS: Registry[type[Router]] = Registry("router")
GATE_NORMS: Registry[Callable[[torch.Tensor], torch.Tensor]] = Registry("gate norm")


@dataclass
class Routing:
    """One routing decision for T tokens.

    probs [T, E] fp32 (fp64 for fp64 input): per-token distribution over experts (full softmax, not just the top-k) used for the
        balance loss P_e and router entropy. logits [T, E] fp32 or None: used for the z-loss.
    expert, weight [T, k]: token-choice choices in priority order (column 0 = first choice) and their
        combine weights; `active` [T, k] bool marks choices to dispatch (padding / policy-skipped are False).
    token, expert_flat, weight_flat [N]: flat assignments, set directly by expert-choice routers.
    """

    probs: torch.Tensor
    logits: torch.Tensor | None
    expert: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    active: torch.Tensor | None = None
    token: torch.Tensor | None = None
    expert_flat: torch.Tensor | None = None
    weight_flat: torch.Tensor | None = None


class Router(nn.Module):
    """Linear scorer W [E, d] (Switch's small truncated-normal init) plus a selection rule.

    `fixed_top_k`: the k a router's rule is defined for (None = any k); MoEConfig refuses any other top_k.
    """

    token_choice = True
    fixed_top_k: int | None = None

    def __init__(self, d_model: int, cfg: RouterSettings):
        super().__init__()
        self.num_experts, self.top_k, self.jitter = cfg.num_experts, cfg.top_k, cfg.router_jitter
        self.weight = nn.Parameter(torch.empty(cfg.num_experts, d_model))
        std = math.sqrt(cfg.router_init_scale / d_model)
        nn.init.trunc_normal_(self.weight, std=std, a=-2 * std, b=2 * std)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """x [T, d] -> logits [T, E] in fp32 (fp64 stays fp64), outside autocast."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.to(torch.promote_types(x.dtype, torch.float32))
            if self.training and self.jitter > 0:
                x = x * torch.empty_like(x).uniform_(1 - self.jitter, 1 + self.jitter)
            return F.linear(x, self.weight.to(x.dtype))

    def flops(self, num_tokens: int) -> int:
        """Forward matmul FLOPs of scoring `num_tokens` tokens."""
        return 2 * num_tokens * self.weight.shape[1] * self.num_experts

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None, token_ids: torch.Tensor | None) -> Routing:
        raise NotImplementedError


def _active(valid: torch.Tensor | None, shape: tuple[int, int], device: torch.device) -> torch.Tensor:
    act = torch.ones(shape, dtype=torch.bool, device=device)
    return act if valid is None else act & valid[:, None]


@ROUTERS.register("switch")
class SwitchRouter(Router):
    """Switch Transformer top-1: softmax over experts, weight = probability of the chosen expert."""

    fixed_top_k = 1

    def forward(self, x, valid, token_ids):
        logits = self.logits(x)
        probs = logits.softmax(-1)
        weight, expert = probs.topk(self.top_k, dim=-1)
        return Routing(probs, logits, expert, weight, _active(valid, expert.shape, x.device))


@ROUTERS.register("mixtral")
class MixtralRouter(Router):
    """Mixtral: top-k on the logits, softmax over the k chosen logits only."""

    def forward(self, x, valid, token_ids):
        logits = self.logits(x)
        top, expert = logits.topk(self.top_k, dim=-1)
        return Routing(logits.softmax(-1), logits, expert, top.softmax(-1), _active(valid, expert.shape, x.device))


@ROUTERS.register("gshard")
class GShardRouter(Router):
    """GShard top-2, weights g1/(g1+g2), g2/(g1+g2). Second-expert policy in training (eval uses 'all'):
    all = always dispatch it; random = dispatch it with probability min(1, 2*g2) (g2 the raw softmax
    probability, as in GShard/fairseq); sampling = pick it by Gumbel-perturbed logits among the rest."""

    fixed_top_k = 2

    def __init__(self, d_model: int, cfg: RouterSettings):
        super().__init__(d_model, cfg)
        self.policy = cfg.second_expert_policy

    def forward(self, x, valid, token_ids):
        logits = self.logits(x)
        probs = logits.softmax(-1)
        first = probs.argmax(-1, keepdim=True)
        policy = self.policy if self.training else "all"
        scores = logits
        if policy == "sampling":
            u = torch.rand_like(logits).clamp_min(torch.finfo(logits.dtype).tiny)
            scores = logits - torch.log(-torch.log(u))
        second = scores.scatter(-1, first, float("-inf")).argmax(-1, keepdim=True)
        expert = torch.cat([first, second], dim=-1)
        g = probs.gather(-1, expert)
        active = _active(valid, expert.shape, x.device)
        if policy == "random":
            active = active.clone()
            active[:, 1] &= 2 * g[:, 1] > torch.rand_like(g[:, 1])
        weight = g / g.sum(-1, keepdim=True).clamp_min(torch.finfo(g.dtype).eps)
        return Routing(probs, logits, expert, weight, active)


@ROUTERS.register("deepseek_v3")
class AuxFreeRouter(Router):
    """DeepSeek-V3 auxiliary-loss-free balancing: sigmoid scores s; experts chosen by top-k of s + b (b a
    per-expert bias outside the gradient); weights = chosen s normalised to sum 1. In training the layer's
    load is accumulated; `update_bias()` (call after each optimizer step, see `sparse_moe.step_routers`)
    applies b_e += u * sign(mean load - load_e) and resets the count. P for the balance loss = s / sum(s).
    With `sync_across_ranks` (sparse_moe.sync_router_stats) the load is summed over the ranks first, so every
    rank applies the same update, the one a single process would apply to the global batch."""

    sync_across_ranks = False

    def __init__(self, d_model: int, cfg: RouterSettings):
        super().__init__(d_model, cfg)
        self.rate = cfg.bias_update_rate
        self.register_buffer("score_bias", torch.zeros(cfg.num_experts))
        self.register_buffer("load", torch.zeros(cfg.num_experts))

    def forward(self, x, valid, token_ids):
        logits = self.logits(x)
        s = logits.sigmoid()
        expert = (s.detach() + self.score_bias).topk(self.top_k, dim=-1).indices
        w = s.gather(-1, expert)
        active = _active(valid, expert.shape, x.device)
        if self.training:
            with torch.no_grad():
                self.load += torch.bincount(expert[active], minlength=self.num_experts).to(self.load.dtype)
        return Routing(s / s.sum(-1, keepdim=True), logits, expert, w / w.sum(-1, keepdim=True), active)

    @torch.no_grad()
    def update_bias(self) -> None:
        if self.sync_across_ranks and data_parallel_world() > 1:
            dist.all_reduce(self.load)
        if self.load.sum() > 0:
            self.score_bias += self.rate * torch.sign(self.load.mean() - self.load)
        self.load.zero_()


@ROUTERS.register("hash")
class HashRouter(Router):
    """Hash layers (Roller et al. 2021): expert = fixed hash of the token id (of the flat position when no ids
    are given); weight 1, no learned parameters, no z-loss."""

    fixed_top_k = 1

    def __init__(self, d_model: int, cfg: RouterSettings):
        nn.Module.__init__(self)
        self.num_experts, self.top_k, self.jitter = cfg.num_experts, 1, 0.0
        self.weight = None

    def flops(self, num_tokens: int) -> int:
        return 0

    def forward(self, x, valid, token_ids):
        ids = token_ids if token_ids is not None else torch.arange(x.shape[0], device=x.device)
        # Knuth multiplicative hash, then modulo E.
        expert = ((ids.long() * 2654435761) % (2**32) % self.num_experts)[:, None]
        probs = F.one_hot(expert[:, 0], self.num_experts).float()
        weight = torch.ones(expert.shape, dtype=torch.float32, device=x.device)
        return Routing(probs, None, expert, weight, _active(valid, expert.shape, x.device))


@ROUTERS.register("expert_choice")
class ExpertChoiceRouter(Router):
    """Expert choice (Zhou et al. 2022): token-wise softmax scores, then each expert takes its top-C tokens,
    C = ceil(c * T_valid / E) with c = capacity_factor (default top_k); weight = the score. Every expert
    gets exactly C tokens (a token may get 0 or several experts); padding is never chosen."""

    token_choice = False

    def capacity(self, num_valid: int, c: float | None) -> int:
        c = float(self.top_k) if not c else c
        return max(1, min(num_valid, math.ceil(c * num_valid / self.num_experts)))

    def forward(self, x, valid, token_ids, c: float | None = None):
        logits = self.logits(x)
        probs = logits.softmax(-1)
        scores = probs if valid is None else probs.masked_fill(~valid[:, None], float("-inf"))
        n_valid = x.shape[0] if valid is None else int(valid.sum())
        cap = self.capacity(n_valid, c)
        w, tok = scores.t().topk(cap, dim=-1)  # [E, C]
        expert = torch.arange(self.num_experts, device=x.device)[:, None].expand_as(tok)
        return Routing(probs, logits, token=tok.reshape(-1), expert_flat=expert.reshape(-1), weight_flat=w.reshape(-1))


# Gate norms: weight [T, k] of a token-choice router -> the combine weights the layer uses (MoEConfig.gate_norm).
@GATE_NORMS.register("none")
def keep_gates(weight: torch.Tensor) -> torch.Tensor:
    """The router's own weights (Switch: p of the chosen expert, < 1)."""
    return weight


@GATE_NORMS.register("sum")
def sum_to_one(weight: torch.Tensor) -> torch.Tensor:
    """Chosen weights renormalised to sum 1 (Mixtral, DeepSeek `norm_topk_prob`); top-1 weights become the
    constant 1, so the task loss gives the router no gradient."""
    return weight / weight.sum(-1, keepdim=True).clamp_min(torch.finfo(weight.dtype).tiny)


@GATE_NORMS.register("detached_sum")
def sum_to_one_detached(weight: torch.Tensor) -> torch.Tensor:
    """Value of "sum" (weights sum to 1: identical experts give exactly the dense FFN, top-1 gives w = p/p = 1.0
    exactly), gradient of "none" scaled by 1/sum: the router still learns from the task loss. The upcycling
    default (`sparse_moe.moefy`)."""
    return weight / weight.detach().sum(-1, keepdim=True).clamp_min(torch.finfo(weight.dtype).tiny)
