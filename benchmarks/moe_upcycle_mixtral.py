"""An upcycled Llama (sparse_moe.moefy) vs transformers' own Mixtral of the same shape, fwd+bwd, one process.

    python benchmarks/moe_upcycle_mixtral.py               # CPU, fp32, 1 thread: width 512, 4 layers, E=8, top-2
    python benchmarks/moe_upcycle_mixtral.py --threads 2 --reps 9

Arms, all with the same attention, norms and embeddings: `dense` = the LlamaModel (SwiGLU FFN width f);
`ours` = that model after `moefy(model, num_experts=E, top_k=k)` (every expert a copy of the FFN, Mixtral router,
dropless, default dispatch), its router losses included as it runs in training; `hf` = transformers' MixtralModel
(MixtralSparseMoeBlock, `grouped_mm` experts: what from_pretrained picks in transformers 5) holding exactly our
weights. The script checks ours and HF's compute the same function before timing. Each round runs every arm once
in a shuffled order; a ratio is the median (and quartiles) over rounds of that round's time ratio (paired, so slow
drifts of this shared VM cancel). Acceptance (issue 20): ours/hf <= 1.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

# isort: off
from experiments import allocator  # noqa: F401  before torch: huge pages, as the leanlab CLI runs
import torch
# isort: on

from sparse_moe import MoEFFN, collect_aux, moefy, total_aux_loss


def build(args):
    """(dense LlamaModel, upcycled copy, MixtralModel with the upcycled weights)."""
    import copy

    from transformers import LlamaConfig, LlamaModel, MixtralConfig, MixtralModel

    shape = dict(vocab_size=1000, hidden_size=args.d_model, intermediate_size=args.d_ff, num_hidden_layers=args.layers,
                 num_attention_heads=args.d_model // 64, num_key_value_heads=args.d_model // 64,
                 max_position_embeddings=args.seq, attn_implementation="sdpa",
                 rms_norm_eps=1e-6, rope_theta=10000.0)  # the two configs default differently: pin both
    torch.manual_seed(0)
    dense = LlamaModel(LlamaConfig(**shape))
    ours = moefy(copy.deepcopy(dense), num_experts=args.experts, top_k=args.top_k)
    cfg = MixtralConfig(**shape, num_local_experts=args.experts, num_experts_per_tok=args.top_k)
    cfg._experts_implementation = "grouped_mm"
    hf = MixtralModel(cfg)
    state = {k: v for k, v in dense.state_dict().items() if ".mlp." not in k}
    with torch.no_grad():
        for i, layer in enumerate(ours.layers):
            moe = layer.mlp.layer
            state[f"layers.{i}.mlp.gate.weight"] = moe.router.weight
            state[f"layers.{i}.mlp.experts.gate_up_proj"] = moe.experts.w1.transpose(1, 2)  # [E,d,2f] -> [E,2f,d]
            state[f"layers.{i}.mlp.experts.down_proj"] = moe.experts.w2.transpose(1, 2)  # [E,f,d] -> [E,d,f]
    hf.load_state_dict(state, strict=True)
    return dense, ours, hf


def check_same_function(ours, hf, ids) -> float:
    with torch.no_grad():
        a, b = ours(ids).last_hidden_state, hf(ids).last_hidden_state
    collect_aux(ours)
    err, scale = float((a - b).abs().max()), float(a.abs().max())
    if not err <= 1e-4 * max(scale, 1.0):
        raise RuntimeError(f"HF Mixtral and the upcycled model disagree: max abs diff {err:.3g} (scale {scale:.3g})")
    return err


def step(model, ids, g) -> None:
    for p in model.parameters():
        p.grad = None
    out = model(ids).last_hidden_state
    loss = (out * g).sum() + total_aux_loss(collect_aux(model))  # ours: its router losses, as in training
    loss.backward()


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[1], q[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--d-ff", type=int, default=1408)  # Llama's ~8/3 d, rounded to a multiple of 64
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    dense, ours, hf = build(args)
    for m in (dense, ours, hf):
        m.train()
    assert sum(isinstance(m, MoEFFN) for m in ours.modules()) == args.layers
    ids = torch.randint(0, 1000, (args.batch, args.seq), generator=torch.Generator().manual_seed(1))
    g = torch.randn(args.batch, args.seq, args.d_model, generator=torch.Generator().manual_seed(2))
    err = check_same_function(ours.eval(), hf.eval(), ids)
    ours.train(), hf.train()
    arms = {"dense": dense, "ours": ours, "hf": hf}
    times = {n: [] for n in arms}
    order, rng = list(arms), random.Random(0)
    for r in range(args.reps + 1):  # round 0 = warm-up
        rng.shuffle(order)
        for n in order:
            t0 = time.perf_counter()
            step(arms[n], ids, g)
            if r:
                times[n].append(time.perf_counter() - t0)

    print(f"torch {torch.__version__}, {args.threads} thread(s), tokens {args.batch * args.seq}, d {args.d_model}, "
          f"f {args.d_ff}, {args.layers} layers, E={args.experts} top-{args.top_k}, {args.reps} rounds; "
          f"ours vs HF max |diff| {err:.2e}")
    for n in arms:
        print(f"  {n:6s} fwd+bwd median {1e3 * statistics.median(times[n]):8.1f} ms")
    for num, den in (("ours", "hf"), ("ours", "dense"), ("hf", "dense")):
        q = quartiles([a / b for a, b in zip(times[num], times[den])])
        print(f"  {num}/{den}: {q[1]:.3f} [{q[0]:.3f}, {q[2]:.3f}]")


if __name__ == "__main__":
    main()
