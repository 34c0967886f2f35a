"""fwd+bwd time of MoE dispatch backends vs the dense FFN of equal active size, measured side by side.

    python benchmarks/moe_dispatch.py                      # CPU, fp32, 1 thread, T=4096 d=256 f=1024
    python benchmarks/moe_dispatch.py --device cuda --dtype bf16
    /tmp/hfvenv/bin/python benchmarks/moe_dispatch.py      # adds HF transformers' MixtralSparseMoeBlock

Every layer is SwiGLU with the Mixtral router (softmax over the top-k), dropless, so ours and HF's block do
the same work. The dense baseline is a SwiGLU FFN of width k*f. Candidates run round-robin within each
repetition so machine noise hits all of them alike; the table shows median time / median dense time.
HF transformers is used only when importable (install it in a separate venv; it is not a dependency).

The allocator matters at E = 64: every step allocates fresh expert-weight gradients ([E, d, 2f] + [E, f, d] =
200 MB here), which glibc serves by mmap, so each step pays the page faults of first touch (measured: 105-132 ms
to allocate and touch 200 MB, 15 ms to touch it again). With heap-only malloc, as tcmalloc/jemalloc would do,

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 python benchmarks/moe_dispatch.py

measured 2026-11-30 (1 thread, 9 reps, HF transformers 5.24 beside ours), ratios to the dense FFN:
    E=16 k=1/2: sort_split 1.11/1.04  grouped_mm 1.08/0.99  auto 1.10/1.02  hf_mixtral 1.11/1.09
    E=64 k=1/2: sort_split 1.36/1.10  grouped_mm 1.29/1.15  auto 1.35/1.15  hf_mixtral 1.20/1.20
and with the default allocator (15 reps): E=64 k=1 auto 1.61, hf_mixtral 1.53; k=2 auto 1.19, hf_mixtral 1.11.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from sparse_moe import DISPATCHERS, DenseFFN, MoELayer
from sparse_moe.dispatch import AUTO_BY_DEVICE, grouped_mm_supported

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def hf_block(d, f, e, k):
    try:
        from transformers.models.mixtral.modeling_mixtral import MixtralConfig, MixtralSparseMoeBlock
    except ImportError:
        return None
    cfg = MixtralConfig(hidden_size=d, intermediate_size=f, num_local_experts=e, num_experts_per_tok=k)
    cfg._experts_implementation = "grouped_mm"  # what from_pretrained picks by default in transformers 5.x
    return MixtralSparseMoeBlock(cfg)


def step(mod, x, g, device):
    for p in mod.parameters():
        p.grad = None
    xx = x.detach().requires_grad_(True)
    y = mod(xx)
    y = y[0] if isinstance(y, tuple) else y
    y.backward(g)
    if device == "cuda":
        torch.cuda.synchronize()


def bench_shape(t, d, f, e, k, reps, device, dtype):
    torch.manual_seed(0)
    x = torch.randn(1, t, d, device=device, dtype=dtype)
    g = torch.randn_like(x)
    cands = {"dense": DenseFFN(d, k * f, "swiglu")}
    for name in [*DISPATCHERS.names(), "auto"]:
        if name == "loop" and e > 16:
            continue  # the plain reference indexes W[e] (copies W per expert in backward): 37x dense at E=64
        layer = MoELayer(d, f, e, router="mixtral", top_k=k, activation="swiglu", dispatch=name)
        if name == "grouped_mm" and not grouped_mm_supported(x, layer.experts):
            continue
        cands[name] = layer
    hf = hf_block(d, f, e, k)
    if hf is not None:
        cands["hf_mixtral"] = hf
    cands = {n: m.to(device=device, dtype=dtype) for n, m in cands.items()}
    times = {n: [] for n in cands}
    for r in range(reps + 1):  # first round = warm-up
        for n, m in cands.items():
            t0 = time.perf_counter()
            step(m, x, g, device)
            if r:
                times[n].append(time.perf_counter() - t0)
    med = {n: statistics.median(v) for n, v in times.items()}
    return med


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
    ap.add_argument("--json", default=None, help="also write results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]
    print(f"# device={args.device} dtype={args.dtype} threads={args.threads} T={args.tokens} d={args.d_model} "
          f"f={args.d_ff} reps={args.reps}; auto on {args.device} -> {AUTO_BY_DEVICE.get(args.device, 'sort_split')}")
    rows = []
    for e in [int(v) for v in args.experts.split(",")]:
        for k in [int(v) for v in args.top_k.split(",")]:
            med = bench_shape(args.tokens, args.d_model, args.d_ff, e, k, args.reps, args.device, dtype)
            ratio = {n: med[n] / med["dense"] for n in med if n != "dense"}
            backends = {n: r for n, r in ratio.items() if n in DISPATCHERS}
            best = min(backends, key=backends.get)
            row = {"E": e, "k": k, "dense_s": med["dense"], "ratio": ratio, "best": best,
                   "auto_vs_best": ratio["auto"] / backends[best]}
            rows.append(row)
            cols = " ".join(f"{n}={r:.2f}x" for n, r in ratio.items())
            print(f"E={e:3d} k={k} dense={med['dense'] * 1e3:7.1f}ms  {cols}  best={best} "
                  f"auto/best={row['auto_vs_best']:.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
