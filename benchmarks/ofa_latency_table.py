"""How well the per-block latency table predicts a whole sub-net on this CPU, with each clock (once_for_all
TIMERS): wall time vs the calling thread's CPU time, built and checked side by side in one process, interleaved.

On a busy machine a wall-clock table misses whenever the whole sub-net waits for a core; thread CPU time excludes
those waits. Measured on the 2-core VM with a trained MNIST-1D supernet (28 sub-nets): idle, wall median |error|
9.6% (mean -0.5%) vs thread_cpu 10.1% (mean -14.3%: the whole net costs more CPU than its parts); beside two
training jobs, wall 34% vs thread_cpu 22%. Hence `method.latency_timer` defaults to wall.

    python benchmarks/ofa_latency_table.py                          # a fresh MNIST-1D supernet (weights do not matter)
    python benchmarks/ofa_latency_table.py --run outputs/ofa/RUN    # a trained one: RUN/supernet/final.pt
    python benchmarks/ofa_latency_table.py --samples 30 --rounds 3 --repeats 30
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.tasks.ofa_config import OFAModelCfg  # noqa: E402
from once_for_all import ArchSpace  # noqa: E402
from once_for_all.efficiency import TIMERS, LatencyTable, table_error  # noqa: E402
from once_for_all.supernet import OFASupernet  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def supernet(run: Path | None, model: str, num_classes: int) -> OFASupernet:
    """The run's trained supernet (its config.yaml and supernet/final.pt), or a fresh one of conf/model/`model`."""
    raw = OmegaConf.to_container(OmegaConf.load(run / "config.yaml"))["model"] if run else \
        OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "model" / f"{model}.yaml"))
    raw.pop("defaults", None)
    net = OFASupernet(OFAModelCfg(**raw).spec(in_channels=1, num_classes=num_classes))
    if run:
        net.load_state_dict(torch.load(run / "supernet" / "final.pt", weights_only=True)["model"])
    return net.eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, default=None)
    p.add_argument("--model", default="ofa_mnist1d")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--samples", type=int, default=20, help="random sub-nets checked, besides the 8 corners")
    p.add_argument("--rounds", type=int, default=2, help="build+check rounds per timer, interleaved")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    net = supernet(args.run, args.model, args.num_classes)
    space = ArchSpace.full(net.spec)
    rng = random.Random(args.seed)
    cfgs = [*space.corners().values(), *(space.sample(rng) for _ in range(args.samples))]
    errors: dict[str, list[float]] = {t: [] for t in TIMERS}
    for _ in range(args.rounds):
        for timer in TIMERS:
            table = LatencyTable.build(net, warmup=2, repeats=args.repeats, timer=timer)
            errors[timer] += [r["latency/rel_error"] for r in table_error(table, net, cfgs, repeats=args.repeats)]

    print(f"threads={args.threads} sub-nets={len(cfgs)} rounds={args.rounds} repeats={args.repeats} "
          f"supernet={'trained: ' + str(args.run) if args.run else 'fresh ' + args.model}")
    print("| timer | median abs error | p90 abs error | max abs error | within 10 % | mean signed error |")
    print("|---|---|---|---|---|---|")
    for timer, errs in errors.items():
        absolute = sorted(abs(e) for e in errs)
        print(f"| {timer} | {statistics.median(absolute):.1%} | {absolute[int(0.9 * (len(absolute) - 1))]:.1%} | "
              f"{absolute[-1]:.1%} | {sum(a <= 0.10 for a in absolute) / len(absolute):.0%} | "
              f"{statistics.fmean(errs):+.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
