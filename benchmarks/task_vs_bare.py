"""The task path's training step against a bare PyTorch loop of the same recipe, side by side in one process.

  python benchmarks/task_vs_bare.py [--steps 8] [--repeats 3] [--arms fp32,bf16,compile] [--threads 1] [--json F]

ResNet-20 on CIFAR-shaped synthetic data (batch 128; SGD 0.1, momentum 0.9, wd 1e-4; crop+flip), on `--device`
(default cpu). Task path: `experiments.trainer.fit` with the meter on, as a job runs it. Bare: the same model,
optimizer, data order and augmentation in a plain loop (batches gathered from in-memory tensors). Each arm
(fp32 eager, bf16 autocast, torch.compile) runs both paths; samples/s is timed between step ends (the first
`--warmup` steps, compilation and the final evaluation excluded), repeats alternate the two paths and the
median (and best-of, less disturbed by other load) is reported. Target: task / bare >= 0.95 in every arm.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.augment import crop_flip  # noqa: E402
from experiments.batches import epoch_order  # noqa: E402
from experiments.callbacks import Callback  # noqa: E402
from experiments.config import OptimCfg  # noqa: E402
from experiments.data import Splits  # noqa: E402
from experiments.runtime import Runtime  # noqa: E402
from experiments.trainer import fit  # noqa: E402
from lth import build_model  # noqa: E402
from meter import Meter, MeterConfig  # noqa: E402

ARMS = {"fp32": {}, "bf16": {"precision": "bf16"}, "compile": {"compile": True}}


class StepClock(Callback):
    """perf_counter at the end of every step (device work synchronised first)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime, self.ends = runtime, []

    def on_step_end(self, loop, loss) -> None:
        self.runtime.sync()
        self.ends.append(time.perf_counter())


def samples_per_s(ends: list[float], batch: int, warmup: int) -> float:
    timed = ends[warmup:]
    return batch * (len(timed) - 1) / (timed[-1] - timed[0])


def cifar_like(n: int, seed: int = 0) -> Splits:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n + 256, 3, 32, 32, generator=g), torch.randint(0, 10, (n + 256,), generator=g)
    return Splits(x[:n], y[:n], x[n:n + 128], y[n:n + 128], x[n + 128:], y[n + 128:])


def resnet20():
    torch.manual_seed(0)
    return build_model("resnet20", 3 * 32 * 32, 10)


def task(data: Splits, rt: Runtime, steps: int, batch: int, warmup: int) -> float:
    optim = OptimCfg(name="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=batch, steps=steps,
                     augment="crop_flip", eval_every=10**9)
    clock = StepClock(rt)
    with Meter(MeterConfig(), out_dir=None) as meter:
        fit(resnet20(), data, optim, seed=0, total_steps=steps, meter=meter, progress=False, runtime=rt,
            callbacks=[clock])
    return samples_per_s(clock.ends, batch, warmup)


def bare(data: Splits, rt: Runtime, steps: int, batch: int, warmup: int) -> float:
    model = resnet20().to(rt.device)
    step_model = torch.compile(model) if rt.compile else model
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x, y = data.x_train.to(rt.device), data.y_train.to(rt.device)
    order = epoch_order(0, 0, len(x)).to(rt.device)
    model.train()
    ends = []
    for i in range(steps):
        idx = order[i * batch:(i + 1) * batch]
        xb = crop_flip(x[idx], torch.Generator().manual_seed(i))
        with rt.autocast():
            loss = F.cross_entropy(step_model(xb).float(), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        rt.sync()
        ends.append(time.perf_counter())
    return samples_per_s(ends, batch, warmup)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = cifar_like(args.batch * args.steps)
    out = {"device": args.device, "threads": args.threads, "batch": args.batch, "steps": args.steps, "arms": {}}
    for arm in args.arms.split(","):
        rt = Runtime(device=torch.device(args.device), **ARMS[arm])
        runs = {"task": [], "bare": []}
        for r in range(args.repeats):  # alternate which path goes first, so drift hits both alike
            for path in (("task", "bare") if r % 2 == 0 else ("bare", "task")):
                fn = task if path == "task" else bare
                runs[path].append(fn(data, rt, args.steps, args.batch, args.warmup))
        med = {k: statistics.median(v) for k, v in runs.items()}
        best = {k: max(v) for k, v in runs.items()}  # least disturbed by other load on a shared machine
        out["arms"][arm] = {"task_samples_per_s": med["task"], "bare_samples_per_s": med["bare"],
                            "ratio": med["task"] / med["bare"], "ratio_best": best["task"] / best["bare"],
                            "runs": runs}
        print(f"{arm:8s} task {med['task']:8.1f} samples/s   bare {med['bare']:8.1f}   "
              f"ratio {med['task'] / med['bare']:.3f} (median)  {best['task'] / best['bare']:.3f} (best of "
              f"{args.repeats})", flush=True)
    base = out["arms"].get("fp32", {}).get("bare_samples_per_s")
    for r in out["arms"].values():
        if base:
            r["bare_speedup_vs_fp32_bare"] = r["bare_samples_per_s"] / base
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
