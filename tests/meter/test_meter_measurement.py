import json

import pytest

from meter import Measurement

REQUIRED = {"energy/joules", "energy/kwh", "energy/method", "carbon/g_co2e", "carbon/intensity_g_per_kwh",
            "carbon/intensity_source", "carbon/pue", "time/wall_s"}


def _m(j, s, method, g, start, end, src="user", comps=None):
    return Measurement(joules=j, seconds=s, method=method, g_co2e=g, start_unix=start, end_unix=end,
                       intensity_g_per_kwh=g / (j / 3.6e6) if j else 0.0, intensity_source=src,
                       components=comps or {f"cpu/{method}": j})


def test_sum_is_exact_and_merges_methods():
    a = _m(3.6e6, 10.0, "estimated:cpu_time_linear", 100.0, 1000.0, 1010.0)
    b = _m(7.2e6, 5.0, "measured:rapl", 500.0, 2000.0, 2005.0, src="trace:x.csv")
    c = a + b
    assert c.joules == 3.6e6 + 7.2e6 and c.seconds == 15.0 and c.g_co2e == 600.0
    assert c.method == "estimated:cpu_time_linear+measured:rapl"
    assert (c.start_unix, c.end_unix) == (1000.0, 2005.0)
    assert c.intensity_g_per_kwh == pytest.approx(600.0 / 3.0)  # energy-weighted = grams / kWh
    assert c.intensity_source == "user | trace:x.csv"
    assert c.components == {"cpu/estimated:cpu_time_linear": 3.6e6, "cpu/measured:rapl": 7.2e6}
    assert sum([a, b]).joules == c.joules  # works with sum()


def test_round_trip_through_json_counts_once():
    a = _m(5.0, 2.0, "estimated:cpu_time_linear", 1e-3, 1.0, 3.0)
    d = json.loads(json.dumps(a.to_dict()))
    back = Measurement.from_dict(d)
    assert back == a
    assert (back + a).joules == 10.0


def test_from_dict_rejects_unknown_keys_and_negative_energy():
    with pytest.raises(ValueError, match="unknown keys"):
        Measurement.from_dict({"joules": 1.0, "bogus": 2})
    with pytest.raises(ValueError, match="joules"):
        Measurement(joules=-1.0)


def test_row_has_contract_keys_and_is_json_safe():
    a = _m(5.0, 2.0, "estimated:cpu_time_linear", 1e-3, 1.0, 3.0,
           comps={"cpu/estimated:cpu_time_linear": 3.0, "gpu/measured:nvml_counter": 2.0})
    row = a.row()
    assert REQUIRED <= set(row)
    assert all(k.startswith(("energy/", "carbon/", "time/")) for k in row)
    json.dumps(row)
    assert row["energy/kwh"] == 5.0 / 3.6e6
    assert row["energy/estimated_joules"] == 3.0 and row["energy/measured_joules"] == 2.0
    assert row["energy/estimated_components"] == "cpu/estimated:cpu_time_linear"
