"""Mask and meter overhead on the main job's model, measured side by side in one process.

  python benchmarks/lth_overhead.py [--steps 300] [--repeats 5]

Prints (1) masked training throughput / unmasked throughput (the mask is re-applied after every optimizer step;
target: overhead <= 10%) and (2) step time with the meter on / off (target: <= 2%). Repeats alternate the two
arms and report medians, so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.config import OptimCfg  # noqa: E402
from experiments.trainer import fit  # noqa: E402
from lth import STRATEGIES, PruneRates, build_model, ones_mask  # noqa: E402
from lth.data import load_dataset  # noqa: E402
from meter import Meter, MeterConfig  # noqa: E402


class NullLogger:
    def log(self, row, step=None):
        pass


def run(data, masked: bool, metered: bool, steps: int, tmp: Path) -> float:
    torch.manual_seed(0)
    model = build_model("mlp", data.in_features, data.num_classes, hidden=[500, 500])
    mask = None
    if masked:
        mask = STRATEGIES.get("magnitude_layerwise")(model, ones_mask(model, model.prunable_names()), PruneRates(0.9))
    optim = OptimCfg(name="adam", lr=1e-3, batch_size=100, steps=steps, eval_every=10**9)
    with Meter(MeterConfig(enabled=metered), out_dir=tmp if metered else None) as meter:
        start = time.perf_counter()
        fit(model, data, optim, seed=0, total_steps=steps, mask=mask, meter=meter, logger=NullLogger(), tag="b",
            progress=False)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = load_dataset("mnist1d")
    tmp = Path("/tmp/leanlab_bench_meter")
    tmp.mkdir(exist_ok=True)
    run(data, False, False, 50, tmp)  # warm-up
    times = {k: [] for k in ("plain", "masked", "meter_off", "meter_on")}
    for _ in range(args.repeats):
        times["plain"].append(run(data, False, False, args.steps, tmp))
        times["masked"].append(run(data, True, False, args.steps, tmp))
        times["meter_off"].append(run(data, False, False, args.steps, tmp))
        times["meter_on"].append(run(data, False, True, args.steps, tmp))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"torch threads: {torch.get_num_threads()}, steps per arm: {args.steps}, repeats: {args.repeats}")
    print(f"unmasked: {args.steps * 100 / med['plain']:.0f} samples/s, masked: {args.steps * 100 / med['masked']:.0f}")
    print(f"mask overhead (masked time / unmasked time): {med['masked'] / med['plain']:.3f}  target <= 1.10")
    print(f"step time unmetered: {1e3 * med['meter_off'] / args.steps:.2f} ms")
    print(f"meter overhead (meter on / off): {med['meter_on'] / med['meter_off']:.3f}  target <= 1.02")


if __name__ == "__main__":
    main()
