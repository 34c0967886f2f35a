"""Char-level LM: dense FFN vs MoE (E=4, 8; top-1) at equal active FLOPs per token, bits-per-char vs FLOPs.

    python benchmarks/moe_charlm.py                                  # tinyshakespeare, a few minutes on CPU
    python benchmarks/moe_charlm.py --path ''                        # offline stdlib-source default corpus

sparse_moe.models.CharTransformer (pre-LN, every FFN dense or MoE). Every MoE expert has the dense FFN's
width, top-1 (switch router), so active FLOPs per token match dense up to the router. Same seed, data
order, optimiser and steps for every model. Training FLOPs are counted with meter.flops (FlopCounterMode,
forward + backward) on one batch and multiplied by the steps. Validation bpc = mean CE / ln 2 on fixed
held-out batches.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

from meter.flops import count_flops
from sparse_moe import step_routers, total_aux_loss
from sparse_moe.data import load_char_corpus
from sparse_moe.models import CharTransformerConfig, MoEConfig, build_model


def evaluate(model, batches) -> float:
    model.eval()
    with torch.no_grad():
        ce = [F.cross_entropy(model(x)[0].flatten(0, 1), y.flatten()).item() for x, y in batches]
    model.train()
    return sum(ce) / len(ce) / math.log(2)


def run(name, ffn, experts, corpus, args, val_batches):
    torch.manual_seed(args.seed)
    cfg = CharTransformerConfig(
        vocab_size=corpus.vocab_size, block_size=args.block, n_layer=args.layers, n_head=4, d_model=args.d_model,
        d_ff=args.d_ff, ffn=ffn, moe=MoEConfig(num_experts=max(experts, 1), top_k=1, router="switch"),
    )
    model = build_model("char_transformer", cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * s / args.steps))
    )
    g = torch.Generator().manual_seed(args.seed)  # same data order for every model
    x0, y0 = corpus.get_batch("train", args.batch, args.block, torch.Generator().manual_seed(123))
    step_flops = count_flops(model, (x0,), loss_fn=lambda out: F.cross_entropy(out[0].flatten(0, 1), y0.flatten())).total
    params = sum(p.numel() for p in model.parameters())
    rows, wall = [], 0.0
    for step in range(1, args.steps + 1):
        x, y = corpus.get_batch("train", args.batch, args.block, g)
        t0 = time.perf_counter()
        logits, auxes = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten()) + total_aux_loss(auxes)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step_routers(model)
        wall += time.perf_counter() - t0
        if step % args.eval_every == 0 or step == args.steps:
            bpc = evaluate(model, val_batches)
            load = max((a.stats()["load_max_over_mean"] for a in auxes), default=1.0)
            rows.append((step, step * step_flops, wall, bpc))
            print(f"{name:10s} step={step:5d} train_flops={step * step_flops:.3e} wall={wall:6.1f}s val_bpc={bpc:.4f}"
                  f" max_load/mean={load:.2f}", flush=True)
    return {"name": name, "params": params, "step_flops": step_flops, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", default="../shared/data/tinyshakespeare.txt", help="'' = stdlib default corpus")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--eval-every", type=int, default=150)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--d-ff", type=int, default=512)
    ap.add_argument("--experts", default="0,4,8", help="0 = dense")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    corpus = load_char_corpus(args.path or None)
    print(f"# corpus {corpus.sources[0][0]} (+{len(corpus.sources) - 1} more) sha256={corpus.sources[0][1][:12]}.. "
          f"chars={len(corpus.data)} vocab={corpus.vocab_size}")
    vg = torch.Generator().manual_seed(999)
    val_batches = [corpus.get_batch("val", args.batch, args.block, vg) for _ in range(20)]
    results = []
    for e in [int(v) for v in args.experts.split(",")]:
        results.append(run("dense" if e == 0 else f"moe_E{e}", "dense" if e == 0 else "moe", e, corpus, args, val_batches))
    print("\n| model | params | train FLOPs/step | final val bpc | train FLOPs total | wall s |")
    print("|---|---|---|---|---|---|")
    for r in results:
        step, fl, wall, bpc = r["rows"][-1]
        print(f"| {r['name']} | {r['params']} | {r['step_flops']:.3e} | {bpc:.4f} | {fl:.3e} | {wall:.1f} |")


if __name__ == "__main__":
    main()
