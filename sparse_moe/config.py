"""Typed, primitive-field configs for MoE layers (registered in Hydra's ConfigStore by the runner)."""

from __future__ import annotations

from dataclasses import dataclass

from .dispatch import DISPATCHERS
from .experts import ACTIVATIONS
from .routers import GATE_NORMS, ROUTERS

SECOND_EXPERT_POLICIES = ("all", "random", "sampling")


@dataclass
class MoEConfig:
    """Routing, capacity, dispatch and loss options of one `MoELayer` (its widths come from the model).

    capacity_factor: None or 0 = dropless; > 0 = per-expert capacity ceil(cf * k * T / E), overflow dropped
    (first choices are never displaced by second choices). For expert choice it is c, the mean number of
    experts per token: each expert takes exactly ceil(c * T / E) tokens (None -> c = top_k).
    eval_capacity_factor: the same in eval mode (None = dropless).
    """

    num_experts: int = 8
    top_k: int = 1
    router: str = "switch"
    capacity_factor: float | None = None
    eval_capacity_factor: float | None = None
    dispatch: str = "auto"
    activation: str = "gelu"
    bias: bool = False
    num_shared_experts: int = 0
    second_expert_policy: str = "all"  # gshard only: all | random | sampling
    router_jitter: float = 0.0  # multiplicative uniform noise on the router input, training only (Switch)
    router_init_scale: float = 0.1  # router weight ~ truncnormal(std = sqrt(scale / d_model)) (Switch)
    bias_update_rate: float = 1e-3  # deepseek_v3 aux-loss-free bias step u
    balance_coef: float = 1e-2
    z_coef: float = 1e-3
    gate_norm: str = "none"  # GATE_NORMS: none (the router's weights) | sum | detached_sum (see routers.py)

    def __post_init__(self) -> None:
        if self.num_experts < 1:
            raise ValueError(f"moe.num_experts must be >= 1, got {self.num_experts}")
        if not 1 <= self.top_k <= self.num_experts:
            raise ValueError(f"moe.top_k must be in [1, num_experts={self.num_experts}], got {self.top_k}")
        if self.router not in ROUTERS:
            raise ValueError(f"moe.router {self.router!r} unknown; allowed: {', '.join(ROUTERS.names())}")
        if self.dispatch != "auto" and self.dispatch not in DISPATCHERS:
            allowed = ", ".join(["auto", *DISPATCHERS.names()])
            raise ValueError(f"moe.dispatch {self.dispatch!r} unknown; allowed: {allowed}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"moe.activation {self.activation!r} unknown; allowed: {', '.join(ACTIVATIONS.names())}"
            )
        for key in ("capacity_factor", "eval_capacity_factor"):
            v = getattr(self, key)
            if v is not None and v < 0:
                raise ValueError(f"moe.{key} must be None/0 (dropless) or > 0, got {v}")
        if self.second_expert_policy not in SECOND_EXPERT_POLICIES:
            raise ValueError(
                f"moe.second_expert_policy {self.second_expert_policy!r} unknown; allowed: "
                f"{', '.join(SECOND_EXPERT_POLICIES)}"
            )
        router = ROUTERS.get(self.router)
        if router.fixed_top_k is not None and self.top_k != router.fixed_top_k:
            raise ValueError(f"moe.router {self.router!r} is top-{router.fixed_top_k}; got top_k={self.top_k}")
        if self.gate_norm not in GATE_NORMS:
            raise ValueError(f"moe.gate_norm {self.gate_norm!r} unknown; allowed: {', '.join(GATE_NORMS.names())}")
        if self.gate_norm != "none" and not router.token_choice:
            raise ValueError(f"moe.gate_norm {self.gate_norm!r} needs a token-choice router; {self.router!r} is not: "
                             "expert choice combines with its own scores, use moe.gate_norm=none")
        if not 0 <= self.router_jitter < 1:
            raise ValueError(f"moe.router_jitter must be in [0, 1), got {self.router_jitter}")
        if self.router_init_scale <= 0:
            raise ValueError(f"moe.router_init_scale must be > 0, got {self.router_init_scale}")
        if self.num_shared_experts < 0:
            raise ValueError(f"moe.num_shared_experts must be >= 0, got {self.num_shared_experts}")
        if self.balance_coef < 0 or self.z_coef < 0:
            raise ValueError(f"moe.balance_coef and moe.z_coef must be >= 0, got {self.balance_coef}, {self.z_coef}")
