"""Models whose FFNs are dense or MoE, in a registry.

Contract (what the runner relies on): `model(inputs) -> (output, auxes)` where `auxes` is a list of
`MoEAux`, one per MoE layer in order (empty for dense models). The task's loss is
`task_loss(output) + sparse_moe.total_aux_loss(auxes)` (each aux carries its own coefficients), and
`sparse_moe.aux_stats(auxes)` gives per-layer logging rows. Call `sparse_moe.step_routers(model)` after each
optimizer step (DeepSeek-V3 bias balancing; a no-op for other routers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from meter.registry import Registry

from .config import MoEConfig
from .experts import DenseFFN
from .layer import MoEAux, MoELayer

MODELS: Registry[type[nn.Module]] = Registry("model")
# model.ffn -> (d_model, d_ff, moe config, activation) -> the block's FFN module.
FFN_KINDS: Registry[Callable[[int, int, MoEConfig, str], nn.Module]] = Registry("ffn kind")
FFN_KINDS.register("dense")(lambda d_model, d_ff, moe, activation: DenseFFN(d_model, d_ff, activation))
FFN_KINDS.register("moe")(lambda d_model, d_ff, moe, activation: MoELayer.from_config(d_model, d_ff, moe))


def _check_ffn(ffn: str) -> None:
    if ffn not in FFN_KINDS:
        raise ValueError(f"model.ffn {ffn!r} unknown; allowed: {', '.join(FFN_KINDS.names())}")


class FFN(nn.Module):
    """Dense or MoE FFN with one call signature: x [..., d] -> (y [..., d], MoEAux | None)."""

    def __init__(self, kind: str, d_model: int, d_ff: int, moe: MoEConfig, activation: str):
        super().__init__()
        _check_ffn(kind)
        self.inner = FFN_KINDS.get(kind)(d_model, d_ff, moe, activation)

    def forward(self, x, mask=None, token_ids=None) -> tuple[torch.Tensor, MoEAux | None]:
        if isinstance(self.inner, MoELayer):
            return self.inner(x, mask=mask, token_ids=token_ids)
        return self.inner(x), None


@dataclass
class RegressionMLPConfig:
    """in_proj -> num_blocks x (x + FFN(LN(x))) -> LN -> out_proj. Equal active FLOPs with top-k MoE:
    dense d_ff = k * moe d_ff; equal total parameters: dense d_ff = E * moe d_ff."""

    in_dim: int = 32
    out_dim: int = 4
    d_model: int = 64
    d_ff: int = 64
    num_blocks: int = 1
    ffn: str = "moe"
    activation: str = "gelu"
    moe: MoEConfig = field(default_factory=MoEConfig)

    def __post_init__(self) -> None:
        _check_ffn(self.ffn)
        for key in ("in_dim", "out_dim", "d_model", "d_ff", "num_blocks"):
            if getattr(self, key) < 1:
                raise ValueError(f"model.{key} must be >= 1, got {getattr(self, key)}")


@MODELS.register("regression_mlp")
class RegressionMLP(nn.Module):
    """x [B, in_dim] -> (y [B, out_dim], auxes)."""

    config_class = RegressionMLPConfig

    def __init__(self, cfg: RegressionMLPConfig):
        super().__init__()
        self.cfg = cfg
        self.in_proj = nn.Linear(cfg.in_dim, cfg.d_model)
        self.norms = nn.ModuleList(nn.LayerNorm(cfg.d_model) for _ in range(cfg.num_blocks))
        self.ffns = nn.ModuleList(
            FFN(cfg.ffn, cfg.d_model, cfg.d_ff, cfg.moe, cfg.activation) for _ in range(cfg.num_blocks)
        )
        self.norm_out = nn.LayerNorm(cfg.d_model)
        self.out_proj = nn.Linear(cfg.d_model, cfg.out_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[MoEAux]]:
        h = self.in_proj(x)
        auxes = []
        for norm, ffn in zip(self.norms, self.ffns):
            y, aux = ffn(norm(h))
            h = h + y
            if aux is not None:
                auxes.append(aux)
        return self.out_proj(self.norm_out(h)), auxes


@dataclass
class CharTransformerConfig:
    """Pre-LN causal transformer; FFN of every `moe_every`-th block (counting from the last) is MoE when
    ffn = "moe". Equal active FLOPs with top-k: dense d_ff = k * moe d_ff."""

    vocab_size: int = 128
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    d_ff: int = 512
    ffn: str = "moe"
    moe_every: int = 1
    activation: str = "gelu"
    dropout: float = 0.0
    moe: MoEConfig = field(default_factory=MoEConfig)

    def __post_init__(self) -> None:
        _check_ffn(self.ffn)
        for key in ("vocab_size", "block_size", "n_layer", "n_head", "d_model", "d_ff", "moe_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"model.{key} must be >= 1, got {getattr(self, key)}")
        if self.d_model % self.n_head:
            raise ValueError(f"model.d_model={self.d_model} must be divisible by model.n_head={self.n_head}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")


class _Block(nn.Module):
    def __init__(self, cfg: CharTransformerConfig, ffn_kind: str):
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ffn = FFN(ffn_kind, cfg.d_model, cfg.d_ff, cfg.moe, cfg.activation)

    def forward(self, x, token_ids):
        b, s, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (t.view(b, s, self.n_head, d // self.n_head).transpose(1, 2) for t in (q, k, v))
        drop = self.dropout if self.training else 0.0
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        x = x + self.proj(att.transpose(1, 2).reshape(b, s, d))
        y, aux = self.ffn(self.ln2(x), token_ids=token_ids)
        return x + y, aux


@MODELS.register("char_transformer")
class CharTransformer(nn.Module):
    """ids [B, S] -> (logits [B, S, vocab], auxes)."""

    config_class = CharTransformerConfig

    def __init__(self, cfg: CharTransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.block_size, cfg.d_model)
        kinds = [
            cfg.ffn if (cfg.n_layer - 1 - i) % cfg.moe_every == 0 else "dense" for i in range(cfg.n_layer)
        ]
        self.blocks = nn.ModuleList(_Block(cfg, kind) for kind in kinds)
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, list[MoEAux]]:
        if ids.shape[-1] > self.cfg.block_size:
            raise ValueError(f"sequence length {ids.shape[-1]} exceeds model.block_size={self.cfg.block_size}")
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[-1], device=ids.device))
        auxes = []
        for block in self.blocks:
            x, aux = block(x, ids)
            if aux is not None:
                auxes.append(aux)
        return self.head(self.ln_f(x)), auxes


def build_model(name: str, cfg) -> nn.Module:
    """Registry lookup with a config-type check."""
    cls = MODELS.get(name)
    if not isinstance(cfg, cls.config_class):
        raise ValueError(f"model {name!r} needs a {cls.config_class.__name__}, got {type(cfg).__name__}")
    return cls(cfg)
