"""Jobs metered at once on one host (launcher=joblib) each hold the machine's shared power: windows say how many
other metered jobs ran beside them, and the model card refuses to sum such records unless asked (upper bound)."""

import json
import os

import pytest

from meter import Meter, MeterConfig, peers
from meter.model_card import model_card


@pytest.fixture
def leases(tmp_path, monkeypatch):
    monkeypatch.setattr(peers, "FOLDER", tmp_path / "leases")
    return tmp_path / "leases"


def _meter():
    return Meter(MeterConfig(sources=["estimate"], intensity_g_per_kwh=100.0, sample_period_s=60))


def test_a_window_alone_on_the_host_does_not_overlap(leases):
    with _meter() as m, m.window("train") as w:
        pass
    assert w.overlapping_jobs == 0 and w.row()["energy/overlapping_jobs"] == 0
    assert list(leases.iterdir()) == []  # the lease goes with the meter


def test_another_live_job_during_the_window_is_counted_and_a_dead_ones_lease_is_dropped(leases):
    leases.mkdir()
    (leases / "999999999_deadjob_00000000").touch()  # no such process
    with _meter() as m:
        with m.window("alone") as alone:
            pass
        with m.window("shared") as shared:
            (leases / f"{os.getppid()}_otherjob_11111111").touch()  # a live process of another job
    assert alone.overlapping_jobs == 0 and shared.overlapping_jobs == 1
    assert m.result().windows["shared"].overlapping_jobs == 1
    assert not (leases / "999999999_deadjob_00000000").exists()


def test_ranks_of_one_torchrun_job_are_not_overlapping(leases, monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "run42")
    leases.mkdir()
    (leases / f"{os.getppid()}_run42_22222222").touch()  # another rank of the same job
    with _meter() as m, m.window("train") as w:
        pass
    assert w.overlapping_jobs == 0


def _summary(folder, overlapping):
    folder.mkdir(parents=True)
    rec = {"carbon/g_co2e": 1.0, "energy/joules": 36.0, "energy/method": "measured:rapl",
           "energy/overlapping_jobs": overlapping}
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "records": [rec]}))


def test_the_model_card_refuses_to_sum_overlapping_records_unless_asked(tmp_path):
    _summary(tmp_path / "sweep" / "0", 1)
    _summary(tmp_path / "sweep" / "1", 1)
    with pytest.raises(ValueError, match="overlapping_jobs.*--allow-overlap"):
        model_card(tmp_path / "sweep")
    text, runs = model_card(tmp_path / "sweep", allow_overlap=True)
    assert runs.total.joules == 72.0 and "UPPER BOUND" in text
    _summary(tmp_path / "alone" / "0", 0)
    assert "UPPER BOUND" not in model_card(tmp_path / "alone")[0]
