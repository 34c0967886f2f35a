import csv

import pytest

from meter import Measurement, Meter, MeterConfig
from meter.exports import (
    append_emissions_csv,
    codecarbon_row,
    equivalents,
    hf_co2_eq_emissions,
    hf_yaml,
)
from meter.published import patterson, strubell

M = Measurement(joules=7.2e6, seconds=3600.0, method="measured:rapl+estimated:ram_rss", start_unix=0.0,
                end_unix=3600.0, g_co2e=800.0, intensity_g_per_kwh=400.0, intensity_source="user", pue=1.0,
                components={"cpu/measured:rapl": 5.4e6, "dram/estimated:ram_rss": 1.8e6})


def test_hf_block_has_the_documented_fields():
    b = hf_co2_eq_emissions(M, training_type="fine-tuning", geographical_location="Texas, USA",
                            hardware_used="2 vCPU AMD EPYC")
    assert set(b) == {"emissions", "source", "training_type", "geographical_location", "hardware_used"}
    assert b["emissions"] == 800.0  # grams, as the model-card spec asks
    assert "measured:rapl" in b["source"]
    assert hf_yaml(b).startswith("co2_eq_emissions:\n  emissions: 800.0\n")
    with pytest.raises(ValueError, match="training_type"):
        hf_co2_eq_emissions(M, training_type="pretraining")


# The fields of CodeCarbon's `EmissionsData` dataclass (mlco2/codecarbon, codecarbon/output_methods/
# emissions_data.py, v3), which are its emissions.csv columns in order. Data, not imported: codecarbon is not a dep.
CODECARBON_V3_FIELDS = """timestamp project_name run_id experiment_id duration emissions emissions_rate cpu_power
gpu_power ram_power cpu_energy gpu_energy ram_energy energy_consumed water_consumed country_name country_iso_code
region cloud_provider cloud_region os python_version codecarbon_version cpu_count cpu_model gpu_count gpu_model
longitude latitude ram_total_size tracking_mode cpu_utilization_percent gpu_utilization_percent
ram_utilization_percent ram_used_gb on_cloud pue wue""".split()
# The emissions.csv header CodeCarbon 2.2-2.3 wrote (model repos on the Hugging Face Hub carry such files).
CODECARBON_V2_HEADER = """timestamp project_name run_id duration emissions emissions_rate cpu_power gpu_power
ram_power cpu_energy gpu_energy ram_energy energy_consumed country_name country_iso_code region cloud_provider
cloud_region os python_version codecarbon_version cpu_count cpu_model gpu_count gpu_model longitude latitude
ram_total_size tracking_mode on_cloud pue""".split()


def _header(tmp_path, row):
    path = tmp_path / "emissions.csv"
    append_emissions_csv(path, row)
    append_emissions_csv(path, row)
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


def test_emissions_csv_header_is_codecarbons_then_ours(tmp_path):
    header, back = _header(tmp_path, codecarbon_row(M, project_name="p", run_id="r"))
    assert header[: len(CODECARBON_V3_FIELDS)] == CODECARBON_V3_FIELDS
    assert header[len(CODECARBON_V3_FIELDS):] == ["tracker", "energy_method", "intensity_source"]
    v2_positions = [header.index(c) for c in CODECARBON_V2_HEADER]  # every 2.x column, in 2.x's order
    assert v2_positions == sorted(v2_positions)
    assert len(back) == 2 and float(back[1]["emissions"]) == pytest.approx(0.8)


def test_codecarbon_row_units(tmp_path):
    row = codecarbon_row(M, project_name="p", run_id="r")
    assert row["emissions"] == pytest.approx(0.8)  # kg
    assert row["energy_consumed"] == pytest.approx(2.0)  # kWh
    assert row["cpu_energy"] == pytest.approx(1.5) and row["ram_energy"] == pytest.approx(0.5)
    assert row["cpu_power"] == pytest.approx(1500.0) and row["emissions_rate"] == pytest.approx(0.8 / 3600)
    assert row["duration"] == 3600.0 and row["pue"] == 1.0


def test_codecarbon_row_fills_place_machine_and_keeps_version_honest(tmp_path):
    _, (row, _) = _header(tmp_path, codecarbon_row(M, region="FRA", gpu_names=["NVIDIA A40"] * 4))
    assert (row["country_name"], row["country_iso_code"], row["on_cloud"]) == ("France", "FRA", "N")
    assert row["cloud_provider"] == row["cloud_region"] == ""
    assert row["codecarbon_version"] == ""  # not CodeCarbon: our name and version go in `tracker`
    assert row["tracker"].startswith("leanlab-meter ")
    assert row["energy_method"] == M.method and row["intensity_source"] == "user"
    assert row["gpu_count"] == "4" and row["gpu_model"] == "4 x NVIDIA A40"
    assert row["tracking_mode"] == "machine"  # RAPL measured the CPU package
    assert int(row["cpu_count"]) >= 1 and row["cpu_model"] and float(row["ram_total_size"]) > 0
    assert row["os"] and row["python_version"].count(".") == 2
    cloud = codecarbon_row(M, region="gcp:europe-west1")
    assert (cloud["cloud_provider"], cloud["cloud_region"], cloud["region"], cloud["on_cloud"]) == (
        "gcp", "europe-west1", "europe-west1", "Y")
    est = Measurement(joules=1.0, seconds=1.0, method="estimated:x", components={"cpu/estimated:x": 1.0})
    assert codecarbon_row(est)["tracking_mode"] == "process" and codecarbon_row(est)["gpu_count"] == ""


def test_old_emissions_csv_is_kept_not_misaligned(tmp_path):
    path = tmp_path / "emissions.csv"
    path.write_text(",".join(CODECARBON_V2_HEADER) + "\n" + ",".join("1" * len(CODECARBON_V2_HEADER)) + "\n")
    append_emissions_csv(path, codecarbon_row(M))
    assert (tmp_path / "emissions.csv.bak").read_text().startswith("timestamp,project_name,run_id,duration")
    assert path.read_text().splitlines()[0].endswith(",tracker,energy_method,intensity_source")


def test_meter_writes_emissions_csv_with_region(tmp_path):
    with Meter(MeterConfig(region="FRA", emissions_csv=True, sources=["estimate"]), out_dir=tmp_path):
        sum(range(10000))
    with (tmp_path / "emissions.csv").open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["country_iso_code"], row["country_name"], row["run_id"]) == ("FRA", "France", tmp_path.name)
    assert float(row["energy_consumed"]) > 0 and row["codecarbon_version"] == ""


def test_equivalents_factors():
    eq = equivalents(248.548477)  # 400 g/mile = 248.55 g/km
    assert eq["carbon/eq_km_car"] == pytest.approx(1.0, rel=1e-6)
    assert equivalents(8.22)["carbon/eq_phone_charges"] == pytest.approx(1.0)


def test_published_formulas_by_hand():
    r = patterson(hours=100, processors=8, avg_power_w=300, pue=1.1, t_co2e_per_mwh=0.429)
    assert r["mwh"] == pytest.approx(100 * 8 * 300 * 1.1 / 1e6) and r["t_co2e"] == pytest.approx(0.264 * 0.429)
    s = strubell(hours=10, cpu_w=100, dram_w=20, gpu_w=250, gpus=4)
    assert s["kwh"] == pytest.approx(1.58 * 10 * (100 + 20 + 4 * 250) / 1000)
    assert s["lb_co2e"] == pytest.approx(0.954 * s["kwh"])
    with pytest.raises(ValueError, match="hours"):
        strubell(hours=-1, cpu_w=1, dram_w=1, gpu_w=1, gpus=1)
