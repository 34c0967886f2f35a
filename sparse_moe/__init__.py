"""sparse_moe: routed expert layers (routers, capacity, dispatch backends, losses, FLOPs), models and data.

    from sparse_moe import MoELayer
    y, aux = MoELayer(d_model=256, d_ff=1024, num_experts=8, router="switch")(x)
    loss = task_loss + aux.weighted_loss

Routers (ROUTERS): switch, gshard, mixtral, expert_choice, deepseek_v3, hash. Dispatch (DISPATCHERS): loop
(reference), sort_split, fused_ffn, grouped_mm, padded_bmm; "auto" picks per device. Shared experts:
num_shared_experts=n (dense FFNs every token passes through). Fine-grained experts (DeepSeekMoE): split each
expert m ways with num_experts=m*E, d_ff=f/m, top_k=m*k -- same active FLOPs, more routing choices.
Models (sparse_moe.models) return (output, [MoEAux per MoE layer]); data in sparse_moe.data.
Your own model: `moefy(model, match="blocks.*.mlp", num_experts=8)` swaps its FFNs for (upcycled) MoE layers;
`total_aux_loss(collect_aux(model))` after each forward gives the router losses to add (sparse_moe.upcycle).
FFNs of transformers/timm/torch models are found through FFN_SPECS (sparse_moe.ffn_specs; neither library is
imported); save_moefied/load_moefied round-trip a converted model. Under DDP, `sync_router_stats(model)` makes
the balance loss (and DeepSeek-V3's bias update) see the global batch, so N ranks train what one process trains.
"""

from .config import MoEConfig
from .dispatch import DISPATCHERS
from .experts import ACTIVATIONS, DenseFFN, Experts
from .ffn_specs import FFN_SPECS, FFNSpec
from .flops import MoEFlops, flops_stats, layer_flops, training_flops
from .layer import MoEAux, MoELayer, aux_stats, step_routers, sync_router_stats, total_aux_loss
from .moefied_io import load_moefied, save_moefied
from .routers import GATE_NORMS, ROUTERS
from .upcycle import MoEFFN, collect_aux, moefy, step0_differences

__all__ = [
    "ACTIVATIONS",
    "DISPATCHERS",
    "ROUTERS",
    "DenseFFN",
    "GATE_NORMS",
    "Experts",
    "FFN_SPECS",
    "FFNSpec",
    "MoEAux",
    "MoEConfig",
    "MoEFlops",
    "MoEFFN",
    "MoELayer",
    "aux_stats",
    "collect_aux",
    "flops_stats",
    "layer_flops",
    "load_moefied",
    "moefy",
    "save_moefied",
    "step0_differences",
    "step_routers",
    "sync_router_stats",
    "total_aux_loss",
    "training_flops",
]
