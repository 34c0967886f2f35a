from pathlib import Path

import pytest

from meter import Meter, MeterConfig
from meter.sources import SourceUnavailable
from meter.sources import rapl as rapl_mod
from meter.sources.rapl import open_rapl

MAX = 262_143_328_850  # µJ, a typical package range (~262 kJ)


def _domain(root: Path, name: str, label: str, uj: int, max_uj: int = MAX) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "name").write_text(label + "\n")
    (d / "energy_uj").write_text(f"{uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


def _set(d: Path, uj: int) -> None:
    (d / "energy_uj").write_text(f"{uj}\n")


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "powercap"
    p0 = _domain(root, "intel-rapl:0", "package-0", MAX - 100_000)
    p1 = _domain(root, "intel-rapl:1", "package-1", 100_000)
    core = _domain(root, "intel-rapl:0:0", "core", 5)
    dram = _domain(root, "intel-rapl:0:1", "dram", 10_000)
    psys = _domain(root, "intel-rapl:2", "psys", 0)
    return root, p0, p1, core, dram, psys


def test_wrap_is_exact_and_packages_sum(tree):
    root, p0, p1, core, dram, psys = tree
    src = open_rapl(root, {"cpu", "dram"}, 0.1)
    assert sorted(src.keys()) == ["cpu/measured:rapl", "dram/measured:rapl"]
    _set(p0, 50_000)  # wrapped: MAX - 100000 -> MAX -> 50000 = 150000 µJ
    _set(p1, 400_000)  # +300000 µJ
    _set(core, 999_999)  # inside the package: ignored
    _set(psys, 999_999)  # overlaps packages: ignored
    _set(dram, 30_000)  # +20000 µJ
    r = src.read()
    assert r["cpu/measured:rapl"] == pytest.approx(0.45, abs=1e-12)
    assert r["dram/measured:rapl"] == pytest.approx(0.02, abs=1e-12)
    _set(p0, 850_000)  # +800000 µJ, no wrap
    assert src.read()["cpu/measured:rapl"] == pytest.approx(1.25, abs=1e-12)
    assert any("psys" in n for n in src.notes)


def test_only_wanted_components(tree):
    root = tree[0]
    assert open_rapl(root, {"cpu"}, 0.1).keys() == ["cpu/measured:rapl"]


def test_missing_tree_and_unreadable_counter_give_reasons(tree, tmp_path, monkeypatch):
    with pytest.raises(SourceUnavailable, match="does not exist"):
        open_rapl(tmp_path / "nope", {"cpu"}, 0.1)
    real = rapl_mod._read_int

    def deny(path):
        if "intel-rapl:1" in str(path) and path.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(rapl_mod, "_read_int", deny)
    with pytest.raises(SourceUnavailable, match="permission denied.*CVE-2020-8694"):
        open_rapl(tree[0], {"cpu"}, 0.1)


def test_poll_period_that_could_miss_a_wrap_is_refused(tmp_path):
    _domain(tmp_path, "intel-rapl:0", "package-0", 0, max_uj=1_000_000)
    with pytest.raises(SourceUnavailable, match="miss a wrap"):
        open_rapl(tmp_path, {"cpu"}, 0.1)  # a 1 J range wraps in 1 ms at 1 kW


def test_meter_falls_back_to_estimate_with_reason(tree, monkeypatch):
    root = tree[0]
    monkeypatch.setattr(rapl_mod, "_read_int", lambda p: (_ for _ in ()).throw(PermissionError(13, "denied")))
    meter = Meter(MeterConfig(sources=["rapl", "estimate"], rapl_root=str(root)))
    report = {name: (state, detail) for name, state, detail in meter.sources_report()}
    assert report["rapl"][0] == "unavailable" and "permission denied" in report["rapl"][1]
    assert report["estimate"][0] == "live"
    with meter, meter.window("w") as w:
        sum(range(10000))
    assert w.method == "estimated:cpu_time_linear+estimated:ram_rss"


def test_meter_uses_rapl_and_estimates_nothing_it_covers(tree):
    root = tree[0]
    meter = Meter(MeterConfig(sources=["rapl", "estimate"], rapl_root=str(root)))
    with meter, meter.window("w") as w:
        _set(tree[2], 150_000)  # +0.05 J on package 1
    assert w.method == "measured:rapl"
    assert w.joules == pytest.approx(0.05)
    report = {name: (state, detail) for name, state, detail in meter.sources_report()}
    assert report["estimate"] == ("unavailable", "CPU and DRAM already measured")
