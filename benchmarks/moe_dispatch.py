"""fwd+bwd time of MoE dispatch backends vs the dense FFN of equal active size, measured side by side.

    python benchmarks/moe_dispatch.py                      # CPU, fp32, 1 thread, T=4096 d=256 f=1024
    python benchmarks/moe_dispatch.py --device cuda --dtype bf16
    /tmp/hfvenv/bin/python benchmarks/moe_dispatch.py      # adds HF transformers' MixtralSparseMoeBlock

Every layer is SwiGLU with the Mixtral router (softmax over the top-k), dropless. HF's block is given our
layer's weights and the script checks both compute the same function before timing, so they do the same work.
(Before 2026-11-30 it was timed as constructed: its parameters are `torch.empty`, the router held NaNs and every
token went to expert 0 -- one large matmul -- which is why earlier notes had HF at 1.20-1.53x at E = 64.)
The dense baseline is a SwiGLU FFN of width k*f. Each round runs every arm once in a shuffled order; a column
is the median over rounds of that round's time / the dense time (paired, so slow drifts cancel), and auto/hf
adds the quartiles of the per-round auto / HF ratio. HF transformers is used only when importable (install it
in a separate venv; it is not a dependency).

The allocator matters: each step allocates fresh weight gradients (200 MB of them at E = 64) and activations,
which glibc serves by mmap, so every step pays first-touch page faults. Like the leanlab CLI, this script sets
PyTorch's THP_MEM_ALLOC_ENABLE=1 before importing torch (experiments/allocator.py); THP_MEM_ALLOC_ENABLE=0 gives
glibc's 4 KB pages. Measured 2026-11-30, 1 thread, HF transformers 5.24 beside ours, ratio to dense:

  THP on (25 rounds; `auto` = fused_ffn, timed as its own arm: the auto/fused_ffn gap is the noise floor)
    E=8  k=1/2: fused_ffn 1.02/0.94  sort_split 1.02/1.05  grouped_mm 1.00/1.07  auto 1.01/1.00  hf 1.03/1.12
    E=16 k=1/2: fused_ffn 1.06/0.86  sort_split 1.13/0.88  grouped_mm 1.03/0.98  auto 1.07/0.87  hf 1.10/0.97
    E=64 k=1/2: fused_ffn 1.53/1.10  sort_split 1.50/0.98  grouped_mm 1.49/0.92  auto 1.55/1.02  hf 1.58/1.03
    auto/hf quartiles: E=8 0.99 [0.94, 1.02] / 0.81 [0.74, 0.99]; E=16 1.01 [0.95, 1.09] / 0.92 [0.81, 0.98];
                       E=64 1.04 [0.87, 1.19] / 1.02 [0.90, 1.24]
  THP off (15 rounds; auto was sort_split then): E=64 k=1 sort_split 1.75 grouped_mm 1.65 hf 1.76;
    k=2 sort_split 1.45 grouped_mm 1.31 hf 1.34; E<=16 sort_split, grouped_mm and hf 0.99-1.16.
Other runs of the same command moved E=64 k=1 between 1.34 and 1.56 for every arm alike; a single run
cannot resolve 5% differences on this shared VM.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time

# isort: off
from experiments import allocator  # noqa: F401  before torch: huge pages, as the leanlab CLI runs
import torch
# isort: on

from sparse_moe import DISPATCHERS, DenseFFN, MoELayer
from sparse_moe.dispatch import AUTO_BY_DEVICE, grouped_mm_supported

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def hf_block(ours: MoELayer):
    """HF transformers' MixtralSparseMoeBlock holding `ours`'s weights, so both route every token alike.

    The block must be given weights: built standalone its parameters are `torch.empty` (init happens in
    `PreTrainedModel.post_init`), and on this machine the router came up with NaNs and zeros, which sent all
    4096 tokens to expert 0 -- one big matmul instead of 64 small ones, not the work our layer does.
    """
    try:
        from transformers.models.mixtral.modeling_mixtral import MixtralConfig, MixtralSparseMoeBlock
    except ImportError:
        return None
    ex = ours.experts
    cfg = MixtralConfig(hidden_size=ex.d_model, intermediate_size=ex.d_ff, num_local_experts=ex.num_experts,
                        num_experts_per_tok=ours.cfg.top_k)
    cfg._experts_implementation = "grouped_mm"  # what from_pretrained picks by default in transformers 5.x
    block = MixtralSparseMoeBlock(cfg)
    with torch.no_grad():
        block.gate.weight.copy_(ours.router.weight)  # [E, d] in both
        block.experts.gate_up_proj.copy_(ex.w1.transpose(1, 2))  # ours [E, d, 2f] (gate | up) -> HF [E, 2f, d]
        block.experts.down_proj.copy_(ex.w2.transpose(1, 2))  # ours [E, f, d] -> HF [E, d, f]
    return block


def check_same_function(ours: MoELayer, hf, x: torch.Tensor) -> float:
    """Max |ours(x) - hf(x)|; raises if the two layers do not compute the same function."""
    with torch.no_grad():
        a, b = ours(x)[0], hf(x)
        b = b[0] if isinstance(b, tuple) else b
    err = float((a - b).abs().max())
    scale = float(a.abs().max())
    if not err <= 1e-4 * max(scale, 1.0):
        raise RuntimeError(f"HF block and ours disagree: max abs diff {err:.3g} (output scale {scale:.3g})")
    return err


def step(mod, x, g, device):
    for p in mod.parameters():
        p.grad = None
    xx = x.detach().requires_grad_(True)
    y = mod(xx)
    y = y[0] if isinstance(y, tuple) else y
    y.backward(g)
    if device == "cuda":
        torch.cuda.synchronize()


def bench_shape(t, d, f, e, k, reps, device, dtype, backends):
    torch.manual_seed(0)
    x = torch.randn(1, t, d, device=device, dtype=dtype)
    g = torch.randn_like(x)
    cands = {"dense": DenseFFN(d, k * f, "swiglu")}
    for name in [*backends, "auto"]:
        if name == "loop" and e > 16:
            continue  # the plain reference indexes W[e] (copies W per expert in backward): 37x dense at E=64
        torch.manual_seed(1)  # same weights, hence the same routing, for every backend
        layer = MoELayer(d, f, e, router="mixtral", top_k=k, activation="swiglu", dispatch=name)
        if name == "grouped_mm" and not grouped_mm_supported(x, layer.experts):
            continue
        cands[name] = layer
    hf = hf_block(cands["auto"])
    if hf is not None:
        cands["hf_mixtral"] = hf
    cands = {n: m.to(device=device, dtype=dtype) for n, m in cands.items()}
    if hf is not None:
        check_same_function(cands["auto"], cands["hf_mixtral"], x)
    times = {n: [] for n in cands}
    order, rng = list(cands), random.Random(0)
    for r in range(reps + 1):  # first round = warm-up
        rng.shuffle(order)  # a fixed order would hand each arm the allocator/cache state its predecessor left
        for n in order:
            t0 = time.perf_counter()
            step(cands[n], x, g, device)
            if r:
                times[n].append(time.perf_counter() - t0)
    return times


def paired(times: dict[str, list[float]], num: str, den: str) -> tuple[float, float, float]:
    """Quartiles (25, 50, 75%) of the per-round ratio num/den: both ran in the same round, so drifts cancel."""
    q = statistics.quantiles([a / b for a, b in zip(times[num], times[den])], n=4, method="inclusive")
    return q[0], q[1], q[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--d-ff", type=int, default=1024)
    ap.add_argument("--experts", default="8,16,64")
    ap.add_argument("--top-k", default="1,2")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--backends", default=",".join(DISPATCHERS.names()), help="comma list; auto is always run")
    ap.add_argument("--json", default=None, help="also write results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]
    print(f"# device={args.device} dtype={args.dtype} threads={args.threads} T={args.tokens} d={args.d_model} "
          f"f={args.d_ff} reps={args.reps} THP_MEM_ALLOC_ENABLE={os.environ['THP_MEM_ALLOC_ENABLE']}; auto on {args.device} -> {AUTO_BY_DEVICE.get(args.device, 'sort_split')}")
    rows = []
    for e in [int(v) for v in args.experts.split(",")]:
        for k in [int(v) for v in args.top_k.split(",")]:
            times = bench_shape(args.tokens, args.d_model, args.d_ff, e, k, args.reps, args.device, dtype,
                                args.backends.split(","))
            ratio = {n: paired(times, n, "dense")[1] for n in times if n != "dense"}
            backends = {n: r for n, r in ratio.items() if n in DISPATCHERS}
            best = min(backends, key=backends.get)
            row = {"E": e, "k": k, "dense_s": statistics.median(times["dense"]), "ratio": ratio, "best": best,
                   "auto_vs_best": paired(times, "auto", best)[1], "times": times}
            cols = " ".join(f"{n}={r:.2f}x" for n, r in ratio.items())
            line = f"E={e:3d} k={k} dense={row['dense_s'] * 1e3:7.1f}ms  {cols}  best={best} auto/best={row['auto_vs_best']:.2f}"
            if "hf_mixtral" in times:
                row["auto_vs_hf_quartiles"] = paired(times, "auto", "hf_mixtral")
                line += " auto/hf={1:.2f} [{0:.2f}, {2:.2f}]".format(*row["auto_vs_hf_quartiles"])
            rows.append(row)
            print(line, flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
