import csv

import pytest

from meter import Measurement
from meter.exports import (
    CODECARBON_COLUMNS,
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


def test_codecarbon_row_units_and_columns(tmp_path):
    row = codecarbon_row(M, project_name="p", run_id="r")
    assert list(row) == CODECARBON_COLUMNS
    assert row["emissions"] == pytest.approx(0.8)  # kg
    assert row["energy_consumed"] == pytest.approx(2.0)  # kWh
    assert row["cpu_energy"] == pytest.approx(1.5) and row["ram_energy"] == pytest.approx(0.5)
    assert row["cpu_power"] == pytest.approx(1500.0) and row["emissions_rate"] == pytest.approx(0.8 / 3600)
    path = tmp_path / "emissions.csv"
    append_emissions_csv(path, row)
    append_emissions_csv(path, row)
    back = list(csv.DictReader(path.open()))
    assert len(back) == 2 and float(back[1]["emissions"]) == pytest.approx(0.8)


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
