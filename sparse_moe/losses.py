"""Router losses, each normalised per layer and with padding masked out.

Balance loss (Switch / GShard form) = E * sum_e f_e * P_e, where f_e = fraction of the T*k routing choices
(valid tokens, before capacity) that picked expert e and P_e = mean over valid tokens of the full router
distribution. Perfectly uniform routing gives exactly 1.0 for any E and k.

Converting to other libraries' normalisations (at uniform routing they give, and the factor from ours):
- Hugging Face (Mixtral `load_balancing_loss_func`): f summed over the k choices without dividing by k,
  so HF = k * ours (uniform: k); HF also averages over layers it concatenates. HF coef 1e-3 (router_aux_loss_coef)
  on k * ours equals our balance_coef = k * 1e-3.
- DeepSpeed (`top1gating` / `top2gating`): f from first choices only, E * sum f P: equals ours for k = 1
  (uniform: 1); for k = 2 it ignores second choices.
- MegaBlocks (`batched_load_balancing_loss`): w * E / (L * T * k) * sum_layers sum_e count_e * mean_t p_te
  = w * (mean over its L layers of ours); w = moe_loss_weight (default 0.1). A MegaBlocks weight w over
  L layers equals our balance_coef = w / L in each layer.
Router z-loss (ST-MoE) = mean over valid tokens of logsumexp(logits)^2.

Under data parallelism each rank sees a shard of the batch, and E * sum f_e P_e of a shard is not that of the
global batch (a mean of products is not a product of means). `balance_loss(..., across_ranks=True)` sums the
counts and the router probabilities over the default process group first (the probabilities with a
differentiable all-reduce), so N ranks train the weights one process trains on the global batch. The papers'
Switch/GShard loss is per device group (per shard); `sparse_moe.sync_router_stats(model)` opts a model in.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def data_parallel_world() -> int:
    """Ranks in the default process group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def balance_loss(probs: torch.Tensor, expert: torch.Tensor, valid: torch.Tensor | None,
                 across_ranks: bool = False) -> torch.Tensor:
    """probs [T, E], expert [T, k] (or [N] flat choices with valid None) -> scalar, 1.0 when uniform.
    across_ranks: f and P of the global batch (every rank of the default group must call it: a collective)."""
    num_e = probs.shape[-1]
    if valid is not None:
        probs, expert = probs[valid], expert[valid]
    if across_ranks and data_parallel_world() > 1:
        return _global_balance_loss(probs, expert, num_e)
    if expert.numel() == 0:
        return probs.new_zeros(())
    f = torch.bincount(expert.reshape(-1), minlength=num_e).to(probs.dtype) / expert.numel()
    return num_e * (f * probs.mean(0)).sum()


class _AllReduceSum(torch.autograd.Function):
    """Sum over the default group; backward sums the ranks' upstream gradients (each rank's loss depends on every
    rank's input). torch.distributed.nn.functional.all_reduce does this but is deprecated."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of `x` over the ranks of the default process group."""
    return _AllReduceSum.apply(x)


def _global_balance_loss(probs: torch.Tensor, expert: torch.Tensor, num_e: int) -> torch.Tensor:
    """E * sum_e f_e P_e over every rank's tokens. The backward of the differentiable all-reduce sums the ranks'
    gradients, which DDP's mean then divides back: each rank's probabilities get the global loss's gradient."""
    counts = torch.bincount(expert.reshape(-1), minlength=num_e).to(torch.float64)
    sizes = torch.tensor([expert.numel(), probs.shape[0]], dtype=torch.float64, device=counts.device)
    stats = torch.cat([counts, sizes])
    dist.all_reduce(stats)  # routing counts carry no gradient
    prob_sum = all_reduce_sum(probs.sum(0))
    choices, tokens = stats[num_e:].clamp_min(1).to(probs.dtype)  # no valid token anywhere: f = 0, loss 0
    f = stats[:num_e].to(probs.dtype) / choices
    return num_e * (f * (prob_sum / tokens)).sum()


def z_loss(logits: torch.Tensor | None, valid: torch.Tensor | None) -> torch.Tensor:
    """logits [T, E] -> mean(logsumexp^2) over valid tokens; 0 for routers without logits."""
    if logits is None:
        return torch.zeros((), dtype=torch.float32)
    if valid is not None:
        logits = logits[valid]
    if logits.shape[0] == 0:
        return logits.new_zeros(())
    return torch.logsumexp(logits, dim=-1).square().mean()


def router_entropy(probs: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean per-token entropy (nats) of the router distribution; log(E) when uniform."""
    if valid is not None:
        probs = probs[valid]
    if probs.shape[0] == 0:
        return probs.new_zeros(())
    return -(probs * probs.clamp_min(1e-30).log()).sum(-1).mean()
