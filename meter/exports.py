"""Outputs other tools read: the Hugging Face model-card `co2_eq_emissions` block, a CodeCarbon-compatible
`emissions.csv` row, and equivalents people understand (with their factors' sources)."""

from __future__ import annotations

import csv
import json
import logging
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

from meter import host
from meter.equivalents import G_CO2_PER_KM_CAR, G_CO2_PER_PHONE_CHARGE, equivalents  # noqa: F401  (re-exported)
from meter.intensity import load_table, table_lookup
from meter.measurement import Measurement

log = logging.getLogger(__name__)

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
    """The block as model-card YAML front matter lines (strings JSON-quoted, which YAML reads as they are)."""
    lines = ["co2_eq_emissions:"]
    for k, v in block.items():
        lines.append(f"  {k}: {json.dumps(v, ensure_ascii=False)}" if isinstance(v, str) else f"  {k}: {v}")
    return "\n".join(lines) + "\n"


# CodeCarbon's EmissionsData fields, in its emissions.csv column order (codecarbon/output_methods/emissions_data.py,
# v3). Our own columns follow them, so CodeCarbon readers see theirs unchanged and `codecarbon_version` stays empty.
CODECARBON_COLUMNS = [
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate",
    "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed",
    "water_consumed", "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region", "os",
    "python_version", "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude",
    "latitude", "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
]
EXTRA_COLUMNS = ["tracker", "energy_method", "intensity_source"]
EMISSIONS_COLUMNS = CODECARBON_COLUMNS + EXTRA_COLUMNS


def place(region: str | None) -> dict:
    """Country / cloud columns for a `meter.region` value (see `meter.intensity.table_lookup`); empty if unset.

    A country gives its name and ISO code (its sub-national region is unknown, as in CodeCarbon without one);
    a cloud region gives provider and region, and the row is marked on_cloud."""
    if not region:
        return {}
    table_lookup(region)  # ValueError naming meter.region when it is not in the table
    r = load_table()[region.strip().lower()]
    if r["kind"] == "country":
        return {"country_name": r["name"], "country_iso_code": r["key"]}
    provider, cloud_region = r["key"].split(":", 1)
    return {"cloud_provider": provider, "cloud_region": cloud_region, "region": cloud_region, "on_cloud": "Y"}


def codecarbon_row(m: Measurement, project_name: str = "leanlab", run_id: str = "", experiment_id: str = "",
                   region: str | None = None, gpu_names: list[str] | tuple = ()) -> dict:
    """One emissions.csv row in CodeCarbon's units (s, kg CO2eq, kWh, W, GiB); unknown columns stay empty.

    `region` is `meter.region`; `gpu_names` are the metered GPUs. `tracking_mode` is "process" when every
    component is this process's estimate, else "machine" (RAPL and NVML count the whole package or device)."""
    def energy(comp: str) -> float:
        return sum(v for k, v in m.components.items() if k.split("/", 1)[0] == comp) / 3.6e6

    dur = m.seconds
    cpu, gpu, ram = energy("cpu"), energy("gpu"), energy("dram")
    kg = m.g_co2e / 1000
    ts = datetime.fromtimestamp(m.end_unix, tz=timezone.utc) if m.end_unix else datetime.now(timezone.utc)
    ram_gib = host.ram_total_gib()
    estimated_only = bool(m.components) and all("/estimated:" in k for k in m.components)
    row = dict.fromkeys(EMISSIONS_COLUMNS, "")
    row.update({
        "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S"), "project_name": project_name, "run_id": run_id,
        "experiment_id": experiment_id, "duration": dur, "emissions": kg, "emissions_rate": kg / dur if dur else 0.0,
        "cpu_power": cpu * 3.6e6 / dur if dur else 0.0, "gpu_power": gpu * 3.6e6 / dur if dur else 0.0,
        "ram_power": ram * 3.6e6 / dur if dur else 0.0, "cpu_energy": cpu, "gpu_energy": gpu, "ram_energy": ram,
        "energy_consumed": m.kwh, "water_consumed": 0.0, "on_cloud": "N", **place(region),
        "os": platform.platform(), "python_version": platform.python_version(),
        "cpu_count": os.cpu_count() or "", "cpu_model": host.cpu_model(),
        "gpu_count": len(gpu_names) or "", "gpu_model": host.gpu_model(list(gpu_names)),
        "ram_total_size": ram_gib if ram_gib is not None else "",
        "tracking_mode": "process" if estimated_only else "machine", "pue": m.pue, "wue": 0.0,
        "tracker": host.tracker_version(), "energy_method": m.method, "intensity_source": m.intensity_source,
    })
    return row


def append_emissions_csv(path: str | Path, row: dict) -> None:
    """Append a row to emissions.csv (header written once). A file with another header (an older version's) is
    kept as `<name>.bak` and a new one started, as CodeCarbon does."""
    path = Path(path)
    if path.exists() and path.stat().st_size > 0:
        with path.open(newline="") as f:
            header = next(csv.reader(f), [])
        if header != EMISSIONS_COLUMNS:
            backup = path.with_name(path.name + ".bak")
            log.warning("%s has other columns; kept as %s, starting a new file", path, backup.name)
            path.replace(backup)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=EMISSIONS_COLUMNS)
        if new:
            w.writeheader()
        w.writerow(row)
