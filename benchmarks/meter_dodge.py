"""Dodge et al. 2022 (FAccT) on the nine 2022 hourly traces: mean CO2e saved by Flexible Start (delay <= 24 h)
and Pause and Resume (span <= 2 x duration) against starting at once, by job duration.

Start times every `--every` hours through 2022 (those whose whole search span fits in the year); flat power,
so the percentages do not depend on it. Expected shape: Flexible Start helps short jobs most, Pause and
Resume helps long jobs more than Flexible Start does.

    python benchmarks/meter_dodge.py [--traces ../shared/data/carbon_intensity --every 6]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meter.intensity import TraceIntensity  # noqa: E402
from meter.schedule import flexible_start, pause_resume  # noqa: E402

DURATIONS_H = [1, 6, 24, 72, 144]


def savings(values: np.ndarray, d: int, window_h: int, span_factor: float, every: int) -> tuple[float, float]:
    kwh = np.ones(d)
    span = max(d, math.floor(span_factor * d))
    need = max(window_h + d, span)
    fs, pr = [], []
    for s in range(0, len(values) - need + 1, every):
        inten = values[s : s + need]
        base = inten[:d].sum()
        delay, grams = flexible_start(kwh, inten, window_h)
        _, pr_g = pause_resume(kwh, inten[:span])
        fs.append(1 - grams[delay] / base)
        pr.append(1 - pr_g / base)
    return 100 * float(np.mean(fs)), 100 * float(np.mean(pr))


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", default=str(here.parent / "shared" / "data" / "carbon_intensity"))
    ap.add_argument("--every", type=int, default=6, help="hours between simulated start times")
    ap.add_argument("--window", type=int, default=24)
    ap.add_argument("--span-factor", type=float, default=2.0)
    args = ap.parse_args()
    logging.basicConfig(format="note: %(message)s", level=logging.WARNING)
    paths = sorted(Path(args.traces).glob("*_hourly.csv"))
    if not paths:
        raise SystemExit(f"no *_hourly.csv under {args.traces}")
    hdr = " | ".join(f"FS {d}h" for d in DURATIONS_H) + " | " + " | ".join(f"P&R {d}h" for d in DURATIONS_H)
    print(f"mean % CO2e saved vs. starting now; FS window {args.window} h, P&R span <= {args.span_factor:g} x D; "
          f"starts every {args.every} h through 2022\n")
    print(f"| region | mean g/kWh | {hdr} |")
    print("|---|---:|" + "---:|" * (2 * len(DURATIONS_H)))
    allfs, allpr = [], []
    for p in paths:
        tr = TraceIntensity.from_csv(p)
        cells = [savings(tr.values, d, args.window, args.span_factor, args.every) for d in DURATIONS_H]
        fs, pr = [c[0] for c in cells], [c[1] for c in cells]
        allfs.append(fs)
        allpr.append(pr)
        print(f"| {p.name.split('_')[0]} | {tr.values.mean():.0f} | " + " | ".join(f"{v:.1f}" for v in fs + pr) + " |")
    mfs, mpr = np.mean(allfs, axis=0), np.mean(allpr, axis=0)
    print("| **mean** | | " + " | ".join(f"**{v:.1f}**" for v in list(mfs) + list(mpr)) + " |")
    short_fs_wins = mfs[0] > mfs[-1]
    long_pr_wins = mpr[-1] > mfs[-1]
    print(f"\nshape: FS gain falls with duration ({mfs[0]:.1f} % at {DURATIONS_H[0]} h -> {mfs[-1]:.1f} % at "
          f"{DURATIONS_H[-1]} h): {'yes' if short_fs_wins else 'NO'}; for the longest job P&R beats FS "
          f"({mpr[-1]:.1f} % vs {mfs[-1]:.1f} %): {'yes' if long_pr_wins else 'NO'}")


if __name__ == "__main__":
    main()
