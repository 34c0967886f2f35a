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
"""

from __future__ import annotations

import torch


def balance_loss(probs: torch.Tensor, expert: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """probs [T, E], expert [T, k] (or [N] flat choices with valid None) -> scalar, 1.0 when uniform."""
    num_e = probs.shape[-1]
    if valid is not None:
        probs, expert = probs[valid], expert[valid]
    if expert.numel() == 0:
        return probs.new_zeros(())
    f = torch.bincount(expert.reshape(-1), minlength=num_e).to(probs.dtype) / expert.numel()
    return num_e * (f * probs.mean(0)).sum()


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
