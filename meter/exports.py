"""Outputs other tools read: the Hugging Face model-card `co2_eq_emissions` block, a CodeCarbon-compatible
`emissions.csv` row, and equivalents people understand (with their factors' sources)."""

from __future__ import annotations

import csv
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

from meter.equivalents import G_CO2_PER_KM_CAR, G_CO2_PER_PHONE_CHARGE, equivalents  # noqa: F401  (re-exported)
from meter.measurement import Measurement

HF_TRAINING_TYPES = ("pre-training", "fine-tuning")


def hf_co2_eq_emissions(m: Measurement, training_type: str = "pre-training", geographical_location: str = "",
                        hardware_used: str = "", source: str = "") -> dict:
    """The model card's `co2_eq_emissions` block (huggingface.co/docs/hub/model-cards-co2): emissions in grams."""
    if training_type not in HF_TRAINING_TYPES:
        raise ValueError(f"training_type={training_type!r}; allowed: {', '.join(HF_TRAINING_TYPES)}")
    source = source or f"leanlab meter ({m.method}; intensity {m.intensity_source}; PUE {m.pue:g})"
    return {"emissions": float(m.g_co2e), "source": source, "training_type": training_type,
            "geographical_location": geographical_location, "hardware_used": hardware_used}


def hf_yaml(block: dict) -> str:
    """The block as model-card YAML front matter lines."""
    lines = ["co2_eq_emissions:"]
    for k, v in block.items():
        lines.append(f"  {k}: {v!r}" if isinstance(v, str) else f"  {k}: {v}")
    return "\n".join(lines) + "\n"


# CodeCarbon's EmissionsData fields, in its emissions.csv column order (codecarbon/output_methods/emissions_data.py).
CODECARBON_COLUMNS = [
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate",
    "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed",
    "water_consumed", "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region", "os",
    "python_version", "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude",
    "latitude", "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
]


def codecarbon_row(m: Measurement, project_name: str = "leanlab", run_id: str = "", experiment_id: str = "",
                   country_iso_code: str = "", country_name: str = "", region: str = "") -> dict:
    """One emissions.csv row in CodeCarbon's units: seconds, kg CO2eq, kWh, W."""
    def energy(comp: str) -> float:
        return sum(v for k, v in m.components.items() if k.split("/", 1)[0] == comp) / 3.6e6

    dur = m.seconds
    cpu, gpu, ram = energy("cpu"), energy("gpu"), energy("dram")
    kg = m.g_co2e / 1000
    ts = datetime.fromtimestamp(m.end_unix, tz=timezone.utc) if m.end_unix else datetime.now(timezone.utc)
    row = dict.fromkeys(CODECARBON_COLUMNS, "")
    row.update({
        "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S"), "project_name": project_name, "run_id": run_id,
        "experiment_id": experiment_id, "duration": dur, "emissions": kg, "emissions_rate": kg / dur if dur else 0.0,
        "cpu_power": cpu * 3.6e6 / dur if dur else 0.0, "gpu_power": gpu * 3.6e6 / dur if dur else 0.0,
        "ram_power": ram * 3.6e6 / dur if dur else 0.0, "cpu_energy": cpu, "gpu_energy": gpu, "ram_energy": ram,
        "energy_consumed": m.kwh, "water_consumed": 0.0, "country_name": country_name,
        "country_iso_code": country_iso_code, "region": region, "os": platform.platform(),
        "python_version": platform.python_version(), "codecarbon_version": f"leanlab-meter ({m.method})",
        "cpu_count": os.cpu_count() or 0, "cpu_model": platform.processor(), "gpu_count": 0,
        "tracking_mode": "process", "on_cloud": "N", "pue": m.pue, "wue": 0.0,
    })
    return row


def append_emissions_csv(path: str | Path, row: dict) -> None:
    """Append a row to a CodeCarbon-style emissions.csv (header written once)."""
    path = Path(path)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CODECARBON_COLUMNS)
        if new:
            w.writeheader()
        w.writerow(row)
