"""Speed cost of the default `threads: 1` on the main job's model (MLP 40-500-500-10, Adam, batch 100, evaluation
once per epoch), against every core, measured side by side in one process.

  python benchmarks/threads.py [--steps 300] [--repeats 5]

Prints training throughput with 1 thread / with N threads (N = the machine's cores) as a ratio of medians; the
arms alternate, so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.config import OptimCfg  # noqa: E402
from experiments.trainer import FitSpec, Services, fit  # noqa: E402
from lth import build_model  # noqa: E402
from lth.data import load_dataset  # noqa: E402
from meter import Meter, MeterConfig  # noqa: E402


def run(data, threads: int, steps: int) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model("mlp", data.in_features, data.num_classes, hidden=[500, 500])
    optim = OptimCfg(name="adam", lr=1e-3, batch_size=100, steps=steps)
    with Meter(MeterConfig(enabled=False), out_dir=None) as meter:
        start = time.perf_counter()
        fit(model, data, optim, FitSpec(total_steps=steps, seed=0), Services(meter=meter, progress=False))
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for flag, default in (("--steps", 300), ("--repeats", 5)):
        parser.add_argument(flag, type=int, default=default)
    args, data = parser.parse_args(argv), load_dataset("mnist1d")
    cores = os.cpu_count() or 1
    run(data, 1, 30)  # warm-up
    times = {1: [], cores: []}
    for _ in range(args.repeats):
        for threads in times:
            times[threads].append(run(data, threads, args.steps))
    one, many = statistics.median(times[1]), statistics.median(times[cores])
    print(f"{args.steps} steps: 1 thread {one:.2f} s, {cores} threads {many:.2f} s (medians of {args.repeats}); "
          f"throughput ratio 1/{cores} threads = {many / one:.2f}x")


if __name__ == "__main__":
    main()
