"""The Hugging Face model card's `co2_eq_emissions` block for a run folder or a sweep folder of many.

Sums the records of every `summary.json` under the folder: each record is one unit of work, whose
`carbon/g_co2e` is its window (and `train/g_co2e`, where a task puts its training window beside an evaluation
window, as adaptive frames does). The source says which share of the energy was estimated rather than measured.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from meter.exports import hf_co2_eq_emissions, hf_yaml
from meter.measurement import Measurement

# (grams, joules, method) keys of the windows a record may carry
WINDOW_KEYS = (("carbon/g_co2e", "energy/joules", "energy/method"), ("train/g_co2e", "train/joules", "train/method"))


@dataclass
class Runs:
    """What the summaries under a folder add up to."""

    total: Measurement = field(default_factory=Measurement)
    estimated_joules: float = 0.0
    runs: int = 0
    failed: int = 0
    records: int = 0
    hardware: list[str] = field(default_factory=list)
    overlapping: list[str] = field(default_factory=list)  # summaries with records metered beside other jobs


def summaries(folder: str | Path) -> list[Path]:
    """`folder/summary.json`, else every summary.json below it; ValueError naming the folder if none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder; want a run folder (holding summary.json) or a sweep folder")
    found = [folder / "summary.json"] if (folder / "summary.json").is_file() else sorted(folder.rglob("summary.json"))
    if not found:
        raise ValueError(f"{folder}: no summary.json in it or below it (a finished run writes one)")
    return found


def _hardware(run: Path) -> str:
    """'cpu_model; gpu_model' from the run's emissions.csv (meter.emissions_csv=true), else ''."""
    try:
        with (run / "emissions.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return ""
    return "; ".join(v for v in (rows[-1].get("cpu_model"), rows[-1].get("gpu_model")) if v) if rows else ""


def _estimated(rec: dict, joules: float, j_key: str, method_key: str) -> float:
    """Estimated joules of one window: exact where the record splits them out, else the whole window if any
    of its components was estimated (an upper bound)."""
    if j_key == "energy/joules" and "energy/estimated_joules" in rec:
        return float(rec["energy/estimated_joules"])
    return joules if "estimated:" in str(rec.get(method_key, "")) else 0.0


def collect(folder: str | Path, allow_overlap: bool = False) -> Runs:
    """Sum every record under `folder`. Records metered while other jobs ran on the same host (the machine's
    shared power billed to each: meter.peers) are refused unless `allow_overlap` (the sum is then an upper bound)."""
    out = Runs()
    for path in summaries(folder):
        try:
            summary = json.loads(path.read_text())
            records = summary["records"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a run summary ({type(e).__name__}: {e})") from None
        out.runs += 1
        out.failed += summary.get("status") != "completed"
        for rec in records:
            out.records += 1
            if rec.get("energy/overlapping_jobs") and str(path) not in out.overlapping:
                out.overlapping.append(str(path))
            for g_key, j_key, method_key in WINDOW_KEYS:
                if rec.get(g_key) is None:
                    continue
                j = float(rec.get(j_key) or 0.0)
                out.estimated_joules += _estimated(rec, j, j_key, method_key)
                out.total = out.total + Measurement(
                    joules=j, g_co2e=float(rec[g_key]), method=rec.get(method_key, ""),
                    intensity_source=rec.get("carbon/intensity_source", ""), pue=float(rec.get("carbon/pue", 1.0)))
        if out.overlapping and not allow_overlap:
            raise ValueError(f"{out.overlapping[0]}: records metered while other jobs ran on the same host "
                             "(energy/overlapping_jobs > 0): each holds the machine's shared power, so their sum "
                             "counts it more than once; allowed: --allow-overlap (report the sum as an upper bound)")
        hw = _hardware(path.parent)
        if hw and hw not in out.hardware:
            out.hardware.append(hw)
    return out


def _location(intensity_source: str) -> str:
    """A place from the intensity sources: 'FRA' from 'table:FRA (...)', the trace file's name, or ''."""
    places = []
    for s in intensity_source.split(" | "):
        if s.startswith("table:"):
            places.append(s[len("table:"):].split(" ", 1)[0])
        elif s.startswith("trace:"):
            places.append(s[len("trace:"):].split(" ", 1)[0] + " (intensity trace)")
    return ", ".join(dict.fromkeys(places))


def model_card(folder: str | Path, training_type: str = "pre-training", location: str = "",
               hardware: str = "", allow_overlap: bool = False) -> tuple[str, Runs]:
    """(model-card YAML, what was summed) for a run or sweep folder."""
    runs = collect(folder, allow_overlap)
    m = runs.total
    est = runs.estimated_joules / m.joules if m.joules else 0.0
    energy = ("energy measured" if est == 0 else
              f"energy ESTIMATED for {100 * est:.0f} % of {m.joules:.4g} J, not measured")
    if runs.overlapping:
        energy += "; an UPPER BOUND: jobs ran at once and each was billed the shared machine power"
    source = (f"leanlab meter: {runs.records} records of {runs.runs} run(s); {energy} ({m.method}); "
              f"intensity {m.intensity_source or 'unknown'}; PUE {m.pue:g}")
    block = hf_co2_eq_emissions(m, training_type, location or _location(m.intensity_source),
                                hardware or " | ".join(runs.hardware), source)
    return hf_yaml(block), runs
