"""The MNIST-1D lottery claim, over 3 seeds (issue 2's acceptance):

  python benchmarks/lth_mnist1d_science.py [--seeds 0 1 2] [--out outputs/science]

Runs the main job (MLP 40-500-500-10, IMP 20%/level, rewind to init, 10 levels -> 10.7% of weights) per seed and
prints, at the level nearest 90% sparsity, dense vs ticket vs random pruning vs random reinitialisation
(mean ± std), then whether the ticket reaches dense accuracy and beats random pruning by >= 5 points.
Published (MNIST-1D lottery notebook): dense ~65%, ticket 74-76% at 90-92% sparsity, random pruning 61-66%.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from hydra import compose, initialize_config_dir

    import experiments.run as runner

    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("outputs/science"))
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = parser.parse_args()
    by_kind: dict[str, list[float]] = {}
    for seed in args.seeds:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[f"seed={seed}", "progress=false", *args.overrides])
        rows = runner.run_job(cfg, args.out / f"seed_{seed}")
        sparse = max(r["lth/level"] for r in rows)
        for r in rows:
            if r["lth/level"] == 0:
                by_kind.setdefault("dense", []).append(r["acc/test"])
            elif r["lth/level"] == sparse:
                by_kind.setdefault(r["lth/kind"], []).append(r["acc/test"])
                pct = r["lth/percent_remaining"]
    print(f"test accuracy at {pct:.1f}% weights remaining ({100 - pct:.1f}% sparsity), seeds {args.seeds}")
    mean = {}
    for kind, accs in by_kind.items():
        mean[kind] = statistics.mean(accs)
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"  {kind:14s} {100 * mean[kind]:.1f} ± {100 * sd:.1f}   per seed: {[round(100 * a, 1) for a in accs]}")
    print(f"ticket >= dense: {mean['ticket'] >= mean['dense']}; "
          f"ticket - random_prune = {100 * (mean['ticket'] - mean['random_prune']):.1f} points (claim: >= 5)")


if __name__ == "__main__":
    main()
