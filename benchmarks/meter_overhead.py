"""Metering overhead: a >= 50 ms CPU training step with the meter on vs off, same process, interleaved blocks.

"on" is the default config (estimate source here, 100 ms sampler writing energy.csv) with a window around
every step (the worst case; the runner opens one per epoch). Also prints the sampler's read latencies.

    python benchmarks/meter_overhead.py [--blocks 12 --steps 10]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meter import Meter, MeterConfig  # noqa: E402


def _median_us(fn, n=500):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=12)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--width", type=int, default=768)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(args.width, args.width), nn.ReLU(), nn.Linear(args.width, args.width), nn.ReLU(),
                          nn.Linear(args.width, 10))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = torch.randn(512, args.width), torch.randint(0, 10, (512,))

    def step():
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    tmp = Path(tempfile.mkdtemp())
    logging.getLogger("meter.meter").setLevel(logging.ERROR)  # the source report, once per Meter, is noise here

    def block(mode: str) -> float:
        meter = Meter(MeterConfig(enabled=(mode == "on")), out_dir=tmp / mode)
        ts = []
        with meter:
            for _ in range(args.steps):
                t = time.perf_counter()
                with meter.window("step"):
                    step()
                ts.append(time.perf_counter() - t)
        return statistics.median(ts)

    # each round runs off, on and a second off block in a rotating order; the off/off ratio is the noise floor
    on_off, off_off, t_off, t_on = [], [], [], []
    orders = [("off", "on", "off2"), ("on", "off2", "off"), ("off2", "off", "on")]
    for b in range(args.blocks):
        med = {m: block(m) for m in orders[b % 3]}
        on_off.append(med["on"] / med["off"])
        off_off.append(med["off2"] / med["off"])
        t_off.append(med["off"])
        t_on.append(med["on"])
    r, floor = statistics.median(on_off), statistics.median(off_off)
    print(f"step time (median of block medians): off {statistics.median(t_off) * 1e3:.2f} ms, "
          f"on {statistics.median(t_on) * 1e3:.2f} ms; {args.blocks} rounds x {args.steps} steps, 1 torch thread")
    print(f"overhead ratio on/off = {r:.4f} ({100 * (r - 1):+.2f} %; target < 1 %); "
          f"noise floor off/off = {floor:.4f} ({100 * (floor - 1):+.2f} %)")
    print(f"  on/off per round: {' '.join(f'{x:.3f}' for x in on_off)}")

    meter = Meter(MeterConfig(), out_dir=tmp / "lat")
    with meter:
        for s in meter._sources:
            print(f"source {s.name}: read() {_median_us(s.read):.1f} us")
        print(f"sampler tick (poll + read + ledger + csv row): {_median_us(meter._tick, 200):.1f} us "
              f"every {meter.cfg.sample_period_s * 1e3:g} ms = "
              f"{_median_us(meter._tick, 200) / (meter.cfg.sample_period_s * 1e6) * 100:.3f} % of one core")

        def edge():
            with meter.window("e"):
                pass

        print(f"window open+close (two ledger snapshots): {_median_us(edge):.1f} us")


if __name__ == "__main__":
    main()
