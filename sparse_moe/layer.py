"""MoELayer: a drop-in FFN, `forward(x[..., d]) -> (y[..., d], MoEAux)`.

y holds the routed experts' weighted sum (plus shared experts); tokens dropped by capacity or masked as
padding get y = 0, so the block's residual carries them. Losses come back in `MoEAux`, never global state:
the training task adds `aux.weighted_loss` (= balance_coef * balance_loss + z_coef * z_loss) per layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .capacity import Assignments, token_choice_assignments
from .config import MoEConfig
from .dispatch import resolve_dispatch
from .experts import DenseFFN, Experts
from .losses import balance_loss, router_entropy, z_loss
from .routers import GATE_NORMS, ROUTERS


@dataclass
class MoEAux:
    """Per-layer losses and routing statistics of one forward.

    tokens_per_expert [E]: rows dispatched after capacity; requested_per_expert [E]: before capacity.
    dropped: choices refused by capacity; drop_fraction = dropped / requested choices.
    rows_executed: rows the backend pushed through experts (padding included, e.g. padded_bmm: E * C).
    row_flops: forward FLOPs of one row through one expert, so `executed_flops` is what this call's routing cost.
    """

    balance_loss: torch.Tensor
    z_loss: torch.Tensor
    weighted_loss: torch.Tensor
    tokens_per_expert: torch.Tensor
    requested_per_expert: torch.Tensor
    dropped: torch.Tensor
    drop_fraction: torch.Tensor
    router_entropy: torch.Tensor
    num_tokens: int
    num_valid_tokens: int
    capacity: int | None
    rows_executed: int
    row_flops: int = 0

    @property
    def executed_flops(self) -> int:
        """Forward FLOPs of the expert rows this call executed (routing-dependent; backward adds 2x)."""
        return self.row_flops * self.rows_executed

    def stats(self) -> dict[str, float]:
        """Flat floats for logging: losses, load (max/mean), unused experts, drops, entropy."""
        load = self.tokens_per_expert.float()
        mean = float(load.mean())
        return {
            "balance_loss": float(self.balance_loss.detach()),
            "z_loss": float(self.z_loss.detach()),
            "load_max_over_mean": float(load.max()) / mean if mean > 0 else 0.0,
            "load_max": float(load.max()),
            "load_mean": mean,
            "unused_experts": int((load == 0).sum()),
            "drop_fraction": float(self.drop_fraction),
            "router_entropy": float(self.router_entropy),
        }


def aux_stats(auxes: list[MoEAux], prefix: str = "moe") -> dict[str, float]:
    """Per-layer stats keyed `<prefix>/layer<i>/<stat>` (never summed over layers: that hides imbalance)."""
    return {f"{prefix}/layer{i}/{k}": v for i, a in enumerate(auxes) for k, v in a.stats().items()}


def total_aux_loss(auxes: list[MoEAux]) -> torch.Tensor | float:
    """Sum of each layer's coefficient-weighted router losses, to add to the task loss."""
    return sum((a.weighted_loss for a in auxes), 0.0)


class MoELayer(nn.Module):
    """Routed experts replacing an FFN of width d_ff. See `MoEConfig` for every option.

    `sync_across_ranks` (set by `sync_router_stats`, off by default): in training, the balance loss and the
    DeepSeek-V3 bias update use the global batch's routing statistics under torch.distributed."""

    sync_across_ranks = False

    def __init__(self, d_model: int, d_ff: int, num_experts: int = 8, **options):
        super().__init__()
        cfg = MoEConfig(num_experts=num_experts, **options)
        if d_model < 1 or d_ff < 1:
            raise ValueError(f"MoELayer needs d_model, d_ff >= 1, got {d_model}, {d_ff}")
        self.cfg, self.d_model, self.d_ff = cfg, d_model, d_ff
        self.router = ROUTERS.get(cfg.router)(d_model, cfg)
        self.gate_norm = GATE_NORMS.get(cfg.gate_norm)
        self.experts = Experts(cfg.num_experts, d_model, d_ff, cfg.activation, cfg.bias)
        self.shared = nn.ModuleList(
            DenseFFN(d_model, d_ff, cfg.activation, cfg.bias) for _ in range(cfg.num_shared_experts)
        )

    @classmethod
    def from_config(cls, d_model: int, d_ff: int, cfg: MoEConfig) -> MoELayer:
        return cls(d_model, d_ff, **asdict(cfg))

    def _assign(self, x, valid, token_ids, num_valid) -> tuple[Assignments, object]:
        cf = self.cfg.capacity_factor if self.training else self.cfg.eval_capacity_factor
        if self.router.token_choice:
            routing = self.router(x, valid, token_ids)
            routing.weight = self.gate_norm(routing.weight)
            return token_choice_assignments(routing, self.cfg.num_experts, cf, num_valid), routing
        routing = self.router(x, valid, token_ids, cf)
        requested = torch.bincount(routing.expert_flat, minlength=self.cfg.num_experts)
        cap = int(requested[0])
        return Assignments(
            routing.token, routing.expert_flat, routing.weight_flat, requested, requested.new_zeros(()), cap
        ), routing

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, token_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, MoEAux]:
        """x [..., d]; mask [...] (True = real token) optional; token_ids [...] for the hash router."""
        if x.shape[-1] != self.d_model:
            raise ValueError(f"MoELayer expects last dim d_model={self.d_model}, got shape {tuple(x.shape)}")
        if mask is not None and mask.shape != x.shape[:-1]:
            raise ValueError(f"mask shape {tuple(mask.shape)} must equal x.shape[:-1] = {tuple(x.shape[:-1])}")
        shape = x.shape
        xf = x.reshape(-1, self.d_model)
        valid = None if mask is None else mask.reshape(-1).to(torch.bool)
        ids = None if token_ids is None else token_ids.reshape(-1)
        num_valid = xf.shape[0] if valid is None else int(valid.sum())

        assign, routing = self._assign(xf, valid, ids, num_valid)
        backend = resolve_dispatch(self.cfg.dispatch, xf, self.experts)
        y, rows = backend(xf, assign.token, assign.expert, assign.weight, self.experts, assign.capacity)
        for ffn in self.shared:
            out = ffn(xf)
            y = y + (out if valid is None else out * valid[:, None].to(out.dtype))

        if self.router.token_choice:
            bal = balance_loss(routing.probs, routing.expert, valid, self.sync_across_ranks and self.training)
        else:  # expert choice: f is uniform by construction, so this is sum_e P_e = 1
            bal = balance_loss(routing.probs if valid is None else routing.probs[valid], assign.expert, None)
        zl = z_loss(routing.logits, valid).to(bal.device)
        n_req = assign.requested.sum()
        aux = MoEAux(
            balance_loss=bal,
            z_loss=zl,
            weighted_loss=self.cfg.balance_coef * bal + self.cfg.z_coef * zl,
            tokens_per_expert=torch.bincount(assign.expert, minlength=self.cfg.num_experts),
            requested_per_expert=assign.requested,
            dropped=assign.dropped,
            drop_fraction=assign.dropped.to(torch.float32) / n_req.clamp_min(1).to(torch.float32),
            router_entropy=router_entropy(routing.probs, valid).detach(),
            num_tokens=xf.shape[0],
            num_valid_tokens=num_valid,
            capacity=assign.capacity,
            rows_executed=rows,
            row_flops=self.experts.row_flops(),
        )
        return y.reshape(shape), aux


def sync_router_stats(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Routing statistics of the global batch under data parallelism, for every MoE layer of `model` (in place):
    the balance loss's f and P and the DeepSeek-V3 router's load are summed over the default process group, so
    N ranks at a global batch B train the weights one process trains at B. A no-op without a group of > 1 rank.
    Off, each rank balances its own shard (Switch/GShard's per-device-group loss). Returns `model`."""
    for m in model.modules():
        if isinstance(m, MoELayer) or hasattr(m, "update_bias"):
            m.sync_across_ranks = enabled
    return model


def step_routers(model: nn.Module) -> None:
    """Apply pending per-step router updates (DeepSeek-V3 bias balancing); call after optimizer.step()."""
    for m in model.modules():
        if hasattr(m, "update_bias"):
            m.update_bias()
