"""Accuracy vs GFLOPs/video on the default needle-frames task: learned policy (lam sweep) vs every baseline.

    python benchmarks/af_pareto.py                    # 3 seeds in one process, the acceptance check
    for s in 0 1 2; do python benchmarks/af_pareto.py --seeds $s --json /tmp/af_S$s.json & done  # in parallel

Per seed: pretrain the three backbones (64/48/32 px) on all frames, train the policy jointly on the frozen
backbones (ST Gumbel) once per lam, evaluate everything on the held-out test clips with really-skipping inference.
Prints one table per seed and the acceptance summary (means over seeds). Wall times are under whatever else
runs on the machine.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch

from adaptive_frames.baselines import build_baseline
from adaptive_frames.data.loader import ClipLoader
from adaptive_frames.data.needle import NeedleConfig, make_needle_splits
from adaptive_frames.model import AdaptiveFrameModel, ModelConfig
from adaptive_frames.stages import PolicyTrainConfig, evaluate, precompute, pretrain_backbone, train_policy


def run_seed(seed: int, args: argparse.Namespace) -> list[dict]:
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    data_cfg = NeedleConfig(seed=seed, num_train=args.num_train)
    train, test = make_needle_splits(data_cfg)
    t_data = time.perf_counter() - t0
    model = AdaptiveFrameModel(ModelConfig(num_classes=data_cfg.num_classes, in_channels=data_cfg.channels))
    loader = ClipLoader(train.clips, train.labels, args.batch, shuffle=True, seed=seed)
    for i, res in enumerate(model.space.resolutions):
        opt = torch.optim.Adam(model.backbones[i].parameters(), lr=args.lr)
        hist = pretrain_backbone(model.backbones[i], res, loader, opt, args.pretrain_epochs)
        print(f"  seed {seed} backbone {res}px: train acc {hist[-1]['acc']:.3f}", flush=True)
    t_pre = time.perf_counter() - t0 - t_data
    cache = precompute(model, train.clips)
    test_loader = ClipLoader(test.clips, test.labels, 128, shuffle=False)
    t = data_cfg.num_frames
    dense = model.dense_flops(t)
    rows = []

    def add(method: str, setting: str, run) -> dict:
        m = evaluate(lambda x, idx: run(x, test.informative[idx]), test_loader, dense)
        row = {"seed": seed, "method": method, "setting": setting, "acc": m["metric"], **m}
        rows.append(row)
        return row

    init_policy = copy.deepcopy(model.policy.state_dict())
    learned = []
    for lam in args.lams:
        model.policy.load_state_dict(init_policy)
        torch.manual_seed(seed)
        opt = torch.optim.Adam(model.policy.parameters(), lr=args.policy_lr)
        cfg = PolicyTrainConfig(epochs=args.policy_epochs, tau0=5.0, gamma=args.gamma, lam=lam)
        ts = time.perf_counter()
        hist = train_policy(model, loader, opt, cfg, cache=cache)
        tp = time.perf_counter() - ts
        row = add("learned", f"lam={lam}", lambda x, inf: model.infer(x))
        row["time/policy_s"] = tp
        learned.append(row)
        print(f"  seed {seed} lam {lam}: train acc {hist[-1]['acc']:.3f} test acc {row['acc']:.3f} "
              f"{row['flops/fraction_of_dense']:.3f} of dense, {tp:.0f}s", flush=True)
    add("dense_top", "T=16@64", build_baseline("dense_top", model))
    add("oracle", "needles@64", build_baseline("oracle", model))
    for ri, res in enumerate(model.space.resolutions):
        for k in (1, 2, 3, 4, 6, 8, 16):
            add("uniform", f"k={k}@{res}", build_baseline("uniform", model, k=k, res_index=ri))
    for th in (0.5, 0.7, 0.9, 0.97, 0.99):
        add("frame_exit", f"thr={th}@64", build_baseline("frame_exit", model, threshold=th))
    top = model.costs().top
    for row in learned:  # random policy at the learned point's mean budget, all spent on the top backbone
        p = min(1.0, row["gflops/mean"] * 1e9 / (t * top))
        add("random", f"matched {row['setting']} p={p:.3f}@64", build_baseline("random", model, probs=(p, 0.0, 0.0), seed=seed))
    total = time.perf_counter() - t0
    for r in rows:
        r["time/seed_total_s"] = total
        r["time/pretrain_s"] = t_pre
    print(f"  seed {seed}: data {t_data:.0f}s, pretrain {t_pre:.0f}s, total {total:.0f}s", flush=True)
    return rows


def acceptance(rows: list[dict], seeds: list[int]) -> None:
    print("\n## acceptance, per seed (learned points at <= 50% of dense GFLOPs)")
    ok_all = []
    for s in seeds:
        rs = [r for r in rows if r["seed"] == s]
        dense = next(r for r in rs if r["method"] == "dense_top")
        cand = [r for r in rs if r["method"] == "learned" and r["flops/fraction_of_dense"] <= 0.5]
        if not cand:
            print(f"seed {s}: no learned point at <= 50% of dense")
            ok_all.append(False)
            continue
        best = max(cand, key=lambda r: r["acc"])
        uni = [r for r in rs if r["method"] == "uniform" and r["gflops/mean"] <= best["gflops/mean"] + 1e-12]
        ub = max(uni, key=lambda r: r["acc"]) if uni else None
        gap_dense = 100 * (best["acc"] - dense["acc"])
        gap_uni = 100 * (best["acc"] - (ub["acc"] if ub else 0.0))
        ok = gap_dense >= -1.0 and gap_uni >= 10.0
        ok_all.append(ok)
        print(f"seed {s}: learned {best['setting']} acc {best['acc']:.4f} at {best['gflops/mean']:.5f} GFLOPs "
              f"({best['flops/fraction_of_dense']:.3f} of dense); dense acc {dense['acc']:.4f}; best uniform at <= "
              f"same GFLOPs {ub['setting'] if ub else '-'} acc {ub['acc'] if ub else float('nan'):.4f}; "
              f"vs dense {gap_dense:+.1f} pt, vs uniform {gap_uni:+.1f} pt -> {'PASS' if ok else 'FAIL'}")
    print(f"all seeds pass: {all(ok_all)}")


def table(rows: list[dict]) -> None:
    print("\n## mean over seeds (acc in %, GFLOPs = 2*MAC per video; GMACs = what the papers call GFLOPs)")
    print("| method | setting | acc | GFLOPs mean | p50 | p95 | GMACs mean | of dense | frames looked | frames @64/48/32 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    keys = []
    for r in rows:
        k = (r["method"], r["setting"] if r["method"] != "random" else r["setting"].split(" p=")[0])
        if k not in keys:
            keys.append(k)
    for k in keys:
        g = [r for r in rows if (r["method"], r["setting"] if r["method"] != "random" else r["setting"].split(" p=")[0]) == k]
        m = {key: statistics.mean(r[key] for r in g) for key in ("acc", "gflops/mean", "gflops/p50", "gflops/p95",
             "gmacs/mean", "flops/fraction_of_dense", "frames/looked", "frames/backbone0", "frames/backbone1",
             "frames/backbone2")}
        sd = statistics.pstdev(r["acc"] for r in g) if len(g) > 1 else 0.0
        print(f"| {k[0]} | {k[1]} | {100 * m['acc']:.1f} ± {100 * sd:.1f} | {m['gflops/mean']:.4f} | {m['gflops/p50']:.4f} | "
              f"{m['gflops/p95']:.4f} | {m['gmacs/mean']:.4f} | {m['flops/fraction_of_dense']:.3f} | {m['frames/looked']:.1f} | "
              f"{m['frames/backbone0']:.1f}/{m['frames/backbone1']:.1f}/{m['frames/backbone2']:.1f} |")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--lams", type=float, nargs="+", default=[0.05, 0.2, 0.5, 1.5])
    p.add_argument("--pretrain-epochs", type=int, default=12)
    p.add_argument("--policy-epochs", type=int, default=12)
    p.add_argument("--gamma", type=float, default=0.3)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--policy-lr", type=float, default=3e-3)
    p.add_argument("--num-train", type=int, default=NeedleConfig.num_train)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=str, default="")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for s in args.seeds:
        rows += run_seed(s, args)
    table(rows)
    acceptance(rows, args.seeds)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
