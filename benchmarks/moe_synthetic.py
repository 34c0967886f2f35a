"""Science check: clustered regression, MoE (E=16) vs dense of equal active FLOPs and of equal total params.

    python benchmarks/moe_synthetic.py                 # 3 seeds, prints a table and the >=30% check

16 Gaussian clusters in R^32, each labelled by its own random 2-layer tanh teacher (sparse_moe.data).
Models (sparse_moe.models.RegressionMLP, d_model=64, one residual FFN block):
  moe_top1     E=16, top-1 (switch), expert d_ff=64
  moe_top2     E=16, top-2 (mixtral), expert d_ff=32    -> same active expert FLOPs as moe_top1
  dense_active dense d_ff=64                             -> equal active FLOPs (minus the router)
  dense_total  dense d_ff=1024                           -> equal total expert parameters
All train with the same loop (AdamW, cosine schedule, batch 256), balance_coef 1e-2, z_coef 1e-3.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from meter.flops import count_flops
from sparse_moe import step_routers, total_aux_loss
from sparse_moe.data import ClusteredRegressionConfig, make_clustered_regression
from sparse_moe.models import MoEConfig, RegressionMLPConfig, build_model

VARIANTS = {
    "moe_top1": dict(ffn="moe", d_ff=64, moe=dict(num_experts=16, top_k=1, router="switch")),
    "moe_top2": dict(ffn="moe", d_ff=32, moe=dict(num_experts=16, top_k=2, router="mixtral")),
    "dense_active": dict(ffn="dense", d_ff=64, moe=dict()),
    "dense_total": dict(ffn="dense", d_ff=1024, moe=dict()),
}


def train_one(variant: str, seed: int, data, epochs: int, batch: int, lr: float):
    v = VARIANTS[variant]
    torch.manual_seed(seed)
    cfg = RegressionMLPConfig(d_model=64, d_ff=v["d_ff"], ffn=v["ffn"], moe=MoEConfig(**v["moe"]))
    model = build_model("regression_mlp", cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    n = data.x_train.shape[0]
    steps = epochs * (n // batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(n // batch):
            idx = perm[i * batch : (i + 1) * batch]
            out, auxes = model(data.x_train[idx])
            loss = torch.nn.functional.mse_loss(out, data.y_train[idx]) + total_aux_loss(auxes)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step_routers(model)
    wall = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        out, auxes = model(data.x_test)
        mse = torch.nn.functional.mse_loss(out, data.y_test).item()
        stats = auxes[0].stats() if auxes else {}
    flops = count_flops(model, (data.x_test[:batch],)).forward / batch
    params = sum(p.numel() for p in model.parameters())
    return {"mse": mse, "flops_per_sample": flops, "params": params, "wall_s": wall, **stats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    res = {v: [] for v in VARIANTS}
    for seed in seeds:
        data = make_clustered_regression(ClusteredRegressionConfig(seed=seed))
        for v in VARIANTS:
            r = train_one(v, seed, data, args.epochs, args.batch, args.lr)
            res[v].append(r)
            print(f"seed={seed} {v:12s} test_mse={r['mse']:.4f} flops/sample={r['flops_per_sample']:.0f} "
                  f"params={r['params']} wall={r['wall_s']:.1f}s "
                  + (f"load_max/mean={r['load_max_over_mean']:.2f} unused={r['unused_experts']}" if "drop_fraction" in r else ""),
                  flush=True)
    print("\n| model | test MSE (mean ± sd over seeds) | fwd FLOPs/sample | params | train wall s |")
    print("|---|---|---|---|---|")
    for v, rs in res.items():
        m = [r["mse"] for r in rs]
        sd = statistics.stdev(m) if len(m) > 1 else 0.0
        print(f"| {v} | {statistics.mean(m):.4f} ± {sd:.4f} | {rs[0]['flops_per_sample']:.0f} | {rs[0]['params']} | "
              f"{statistics.mean(r['wall_s'] for r in rs):.1f} |")
    for i, seed in enumerate(seeds):
        red = 1 - res["moe_top1"][i]["mse"] / res["dense_active"][i]["mse"]
        print(f"seed={seed}: moe_top1 test MSE {100 * red:.1f}% lower than dense_active "
              f"({'PASS' if red >= 0.30 else 'FAIL'} >= 30%)")


if __name__ == "__main__":
    main()
