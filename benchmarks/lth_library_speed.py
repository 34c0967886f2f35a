"""One IMP training unit three ways, in one process: a bare in-memory PyTorch loop, the library (`LotteryTicket` in
the same loop), and the task path (`experiments.tasks.lth.train_unit` -> `trainer.fit`: checkpoints, meter,
early-stop tracking, local logger, row with FLOPs), interleaved over rounds; prints median samples/s ratios. A fourth
arm is the task path with one trainer change applied in-process (the epoch's data order computed once, not at
every step), to size that fix for experiments/trainer.py; a fifth has the meter off (its sampler thread).

  python benchmarks/lth_library_speed.py [--steps 1000] [--rounds 5] [--profile]

Recipe (Frankle & Carbin 2019): LeNet-300-100, Adam 1.2e-3, batch 60, evaluation on val + test every 100 steps
(loss and accuracy, minimum-validation-loss tracking), a level-1 mask (20% pruned per layer) re-applied after each
step, on random MNIST-shaped data held in memory (55K/5K/10K x 784). Target: library and task >= 0.95x bare.
`--profile` runs the task arm once under cProfile and prints where its time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import functools
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments import trainer  # noqa: E402
from experiments.config import validate  # noqa: E402
from experiments.context import RunContext  # noqa: E402
from experiments.loggers import build_logger  # noqa: E402
from experiments.tasks.lth import schedule, train_unit  # noqa: E402
from lth import LotteryTicket, build_model  # noqa: E402
from lth.data import Splits  # noqa: E402
from meter import Meter  # noqa: E402
from tests.helpers import compose  # noqa: E402

BATCH, EVAL_EVERY, LR = 60, 100, 1.2e-3


def make_data(seed: int = 0) -> Splits:
    g = torch.Generator().manual_seed(seed)

    def split(n):
        return torch.randn(n, 784, generator=g), torch.randint(0, 10, (n,), generator=g)

    return Splits(*split(55_000), *split(5_000), *split(10_000), num_classes=10)


def ticket_model(seed: int = 0) -> tuple[nn.Module, LotteryTicket]:
    torch.manual_seed(seed)
    model = build_model("lenet_300_100", 784, 10)
    ticket = LotteryTicket(model, rates=0.2)
    ticket.prune()
    ticket.apply()
    return model, ticket


def evaluate(model: nn.Module, data: Splits) -> dict[str, float]:
    model.eval()
    out = {}
    with torch.no_grad():
        for split, (x, y) in {"val": (data.x_val, data.y_val), "test": (data.x_test, data.y_test)}.items():
            logits = model(x)
            out[f"loss/{split}"] = float(nn.functional.cross_entropy(logits, y))
            out[f"acc/{split}"] = float((logits.argmax(1) == y).float().mean())
    model.train()
    return out


def loop(model: nn.Module, data: Splits, steps: int, after_step) -> float:
    """The recipe as a researcher writes it; returns seconds."""
    start = time.perf_counter()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    n, best = len(data.x_train), (float("inf"), -1, {})
    order = None
    for step in range(steps):
        epoch, i = divmod(step, n // BATCH)
        if i == 0:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch))
        idx = order[i * BATCH : (i + 1) * BATCH]
        loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        after_step()
        if (step + 1) % EVAL_EVERY == 0 or step + 1 == steps:
            metrics = evaluate(model, data)
            if metrics["loss/val"] < best[0]:
                best = (metrics["loss/val"], step + 1, metrics)
    return time.perf_counter() - start


def bare(data: Splits, steps: int, _) -> float:
    model, ticket = ticket_model()
    params = dict(model.named_parameters())
    pairs = [(params[n], m.float()) for n, m in ticket.mask.items()]

    @torch.no_grad()
    def mask():
        for p, m in pairs:
            p.mul_(m)

    return loop(model, data, steps, mask)


def library(data: Splits, steps: int, _) -> float:
    model, ticket = ticket_model()
    return loop(model, data, steps, ticket.apply)


def task(data: Splits, steps: int, tmp: Path, meter_on: bool = True) -> float:
    cfg = validate(compose(["progress=false", "model=lenet_300_100", "optim.name=adam", f"optim.lr={LR}",
                            f"optim.batch_size={BATCH}", f"optim.eval_every={EVAL_EVERY}", "optim.epochs=null",
                            f"optim.steps={steps}", "method.levels=1"]))
    job = Path(tempfile.mkdtemp(dir=tmp))
    model, ticket = ticket_model()
    with Meter(dataclasses.replace(cfg.meter, enabled=meter_on), out_dir=job) as meter:
        ctx = RunContext(job_dir=job, meter=meter, logger=build_logger(job, cfg.logger, compose([]), None),
                         identity={}, progress=False)
        start = time.perf_counter()
        train_unit(cfg, ctx, data, schedule(cfg, data), job / "unit", 1, "ticket",
                   lambda: (model, 0, ticket.mask, None))
        seconds = time.perf_counter() - start
    shutil.rmtree(job)
    return seconds


def task_cached_order(data: Splits, steps: int, tmp: Path) -> float:
    """The task path with the trainer's per-step `epoch_order` (a randperm of the whole training set at every step)
    memoised per epoch: measures what that one change to experiments/trainer.py would buy."""
    original = trainer.epoch_order
    trainer.epoch_order = functools.lru_cache(maxsize=2)(original)
    try:
        return task(data, steps, tmp)
    finally:
        trainer.epoch_order = original


def task_meter_off(data: Splits, steps: int, tmp: Path) -> float:
    """The task path with the meter (and its background sampler thread, invisible to cProfile) switched off."""
    return task(data, steps, tmp, meter_on=False)


# What the task arm's time goes to under --profile: (file suffix, function) -> what it is. Every entry must name
# a function the task path calls (tests/test_benchmarks.py checks each is defined; `profile_shares` refuses one
# the profile never saw, so a renamed function cannot print 0 %).
PROFILE_PARTS = {
    ("trainer.py", "evaluate"): "evaluation (val + test forward, logger row)",
    ("trainer.py", "update"): "early-stop tracking",
    ("trainer.py", "checkpoint"): "checkpoints (one per epoch)",
    ("batches.py", "epoch_order"): "data order: a randperm of the training set per epoch",
    ("masks.py", "apply"): "mask re-application",
    ("objectives.py", "step_flops"): "FLOP accounting per step",
    ("augment.py", "augment_batch"): "augmentation dispatch",
    ("lth.py", "_row"): "row (FLOP count of one inference, param counts)",
    ("meter.py", "window"): "meter windows",
    ("loggers.py", "log"): "local logger",
}


def profile_shares(stats: dict, total_func: str = "train_unit") -> tuple[float, dict[tuple[str, str], float]]:
    """(total seconds, {part: share of it}) from `pstats.Stats(...).stats`; raises when a part never ran."""
    total = max(v[3] for k, v in stats.items() if k[2] == total_func)
    shares = {}
    for suffix, func in PROFILE_PARTS:
        found = [v[3] for k, v in stats.items() if k[0].endswith(suffix) and k[2] == func]
        if not found:
            raise LookupError(f"the profile never called {suffix}:{func}; update PROFILE_PARTS")
        shares[suffix, func] = sum(found) / total
    return total, shares


def profile_task(data: Splits, steps: int, tmp: Path) -> None:
    prof = cProfile.Profile()
    prof.runcall(task, data, steps, tmp)
    total, shares = profile_shares(pstats.Stats(prof).stats)
    print(f"task arm under cProfile: {total:.2f} s for {steps} steps (profiler overhead included)")
    for (suffix, func), share in shares.items():
        print(f"  {100 * share:5.1f}%  {PROFILE_PARTS[suffix, func]}  [{suffix}:{func}]")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core per arm: the 2-core machine is shared
    data = make_data()
    tmp = Path(tempfile.mkdtemp(prefix="lth_library_speed_"))
    arms = {"bare": bare, "library": library, "task": task, "task_cached_order": task_cached_order,
            "task_meter_off": task_meter_off}
    for fn in arms.values():  # warm-up: allocator, FLOP-counter imports
        fn(data, 50, tmp)
    times = {k: [] for k in arms}
    for _ in range(args.rounds):
        for name, fn in arms.items():
            times[name].append(fn(data, args.steps, tmp))
    samples = args.steps * BATCH
    print(f"torch threads: 1, steps per arm: {args.steps}, rounds: {args.rounds}, batch {BATCH}, eval every "
          f"{EVAL_EVERY} steps on 15K samples")
    for name in arms:
        print(f"  {name:18s} {samples / statistics.median(times[name]):8.0f} samples/s (median)")
    for name in list(arms)[1:]:
        ratios = [b / t for b, t in zip(times["bare"], times[name])]  # per round, side by side
        print(f"{name} / bare samples/s: median {statistics.median(ratios):.3f} "
              f"(min {min(ratios):.3f}, max {max(ratios):.3f})  target >= 0.95")
    if args.profile:
        profile_task(data, args.steps, tmp)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
