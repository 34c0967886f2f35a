"""The LTH task's records are identical before and after its move onto the library API (`lth.LotteryTicket`,
`lth.run_imp`), on a fixed seed.

The golden files under tests/lth/golden/ were written by the PRE-refactor code (commit 43fa387, `python -m
experiments.run debug=fast` and `... method.levels=2 optim.epochs=2`), then committed unchanged: they are the
contract "identical before and after", so here, unlike elsewhere, the expected values are stored rather than
computed. They hold every deterministic row field (accuracies, losses, early-stop step, FLOPs, densities, parameter
counts) and, per unit, the SHA-256 and nonzero count of each layer's mask and the SHA-256 of the ticket's trained
weights. Energy, carbon, wall time and run_id are measurements or paths, not results, and are left out.
Regenerate only for an intended change of results: `python -m tests.lth.test_lth_golden <job_dir> <name>`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import compose

GOLDEN = Path(__file__).parent / "golden"
# config_hash: these runs set threads=2, a non-default added since (it names the config, not a result)
VOLATILE = ("energy/", "carbon/", "time/", "run_id", "runtime/", "config_hash")
# Row keys added since the golden files were written (new measurements, not changed results): checked below by their
# relation to the stored fields instead.
ADDED_SINCE = ("flops/train_total_effective",)
# What `debug=fast` meant when the golden files were written (debug modes have changed since).
OLD_DEBUG_FAST = ["progress=false", "data.num_samples=600", "optim.epochs=2", "method.levels=2"]


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def fingerprint(job_dir: Path, rows: list[dict]) -> list[dict]:
    """Each row's deterministic fields plus its unit's mask (per layer: digest, nonzero) and ticket weights."""
    out = []
    for row in rows:
        unit = job_dir / "levels" / f"level_{row['lth/level']:02d}" / row["lth/kind"]
        mask = torch.load(unit / "mask.pt", weights_only=True)["mask"]
        entry = {k: v for k, v in row.items() if not k.startswith(VOLATILE)}
        entry["mask"] = {n: [_digest(m), int(m.sum())] for n, m in sorted(mask.items())}
        if (unit / "final.pt").exists():
            weights = torch.load(unit / "final.pt", weights_only=True)["model"]
            entry["weights"] = {n: _digest(w) for n, w in sorted(weights.items())}
        out.append(entry)
    return out


def _run(tmp_path: Path, overrides: list[str]) -> list[dict]:
    from experiments.run import run_job

    # 2 threads, as the CLI ran on the 2-core machine that wrote the golden files (float sums)
    rows = run_job(compose([*overrides, "threads=2"]), tmp_path)
    return fingerprint(tmp_path, rows)


def _check(got: list[dict], name: str) -> None:
    expected = json.loads((GOLDEN / f"{name}.json").read_text())
    assert len(got) == len(expected)
    for g in got:  # a dense unit's effective training FLOPs are its dense ones; a pruned unit's are fewer
        dense = g["lth/percent_remaining"] == 100.0
        assert (g.pop("flops/train_total_effective") == g["flops/train_total"]) == dense, g["lth/kind"]
    assert not [k for g in got for k in g if k in ADDED_SINCE]
    for g, e in zip(got, expected):
        e = {k: v for k, v in e.items() if not k.startswith(VOLATILE)}
        assert g == e, (g["lth/level"], g["lth/kind"])


def test_debug_main_job_records_identical_to_pre_refactor(tmp_path):
    _check(_run(tmp_path, OLD_DEBUG_FAST), "lth_debug_fast")


@pytest.mark.slow
def test_main_job_two_levels_identical_to_pre_refactor(tmp_path):
    _check(_run(tmp_path, ["progress=false", "method.levels=2", "optim.epochs=2"]), "lth_levels2_epochs2")


if __name__ == "__main__":  # python -m tests.lth.test_lth_golden <job_dir> <name>
    job = Path(sys.argv[1])
    rows = json.loads((job / "summary.json").read_text())["records"]
    (GOLDEN / f"{sys.argv[2]}.json").write_text(json.dumps(fingerprint(job, rows), indent=1, sort_keys=True) + "\n")
