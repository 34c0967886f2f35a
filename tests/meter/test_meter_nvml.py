"""NVML paths on a stub of the pynvml functions the source calls."""

import pytest

from meter.sources import SourceUnavailable
from meter.sources.nvml import open_nvml


class NVMLError(Exception):
    pass


class StubNvml:
    def __init__(self, uuids, counter=True, fail_init=False):
        self.uuids, self.counter, self.fail_init = uuids, counter, fail_init
        self.energy_mj = {u: 1_000_000 for u in uuids}
        self.power_mw = {u: 100_000 for u in uuids}
        self.shutdowns = 0

    def nvmlInit(self):
        if self.fail_init:
            raise NVMLError("Driver Not Loaded")

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return len(self.uuids)

    def nvmlDeviceGetHandleByIndex(self, i):
        return self.uuids[i]

    def nvmlDeviceGetHandleByUUID(self, u):
        if u not in self.uuids:
            raise NVMLError("Not Found")
        return u

    def nvmlDeviceGetUUID(self, h):
        return h.encode()

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not self.counter:
            raise NVMLError("Not Supported")
        return self.energy_mj[h]

    def nvmlDeviceGetPowerUsage(self, h):
        return self.power_mw[h]

    def nvmlDeviceGetName(self, h):
        if h == "GPU-noname":
            raise NVMLError("Unknown")
        return b"NVIDIA H200"


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    for k in ("CUDA_VISIBLE_DEVICES", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)


def test_counter_deltas_summed_over_devices():
    nv = StubNvml(["GPU-a", "GPU-b"])
    src = open_nvml({"gpu"}, nvml=nv)
    assert src.keys() == ["gpu/measured:nvml_counter"]
    nv.energy_mj["GPU-a"] += 1500  # 1.5 J
    nv.energy_mj["GPU-b"] += 250  # 0.25 J
    assert src.read() == {"gpu/measured:nvml_counter": pytest.approx(1.75)}


def test_device_names_for_the_record():
    src = open_nvml({"gpu"}, nvml=StubNvml(["GPU-a", "GPU-noname"]))
    assert src.device_names == ["NVIDIA H200", "unknown NVIDIA GPU"]


def test_power_polling_trapezoid_and_extrapolation():
    nv, clock = StubNvml(["GPU-old"], counter=False), Clock()
    src = open_nvml({"gpu"}, nvml=nv, clock=clock)  # 100 W at t=0
    assert src.keys() == ["gpu/measured:nvml_power"]
    clock.t, nv.power_mw["GPU-old"] = 1.0, 300_000
    src.poll()  # trapezoid 0..1 s: (100 + 300)/2 = 200 J
    clock.t, nv.power_mw["GPU-old"] = 3.0, 300_000
    src.poll()  # 1..3 s at 300 W: 600 J
    assert src.read()["gpu/measured:nvml_power"] == pytest.approx(800.0)
    clock.t = 3.5  # between polls: extrapolate the last power, no device call
    nv.power_mw["GPU-old"] = 10**9
    assert src.read()["gpu/measured:nvml_power"] == pytest.approx(950.0)


def test_visible_devices_by_uuid_and_index(monkeypatch):
    nv = StubNvml(["GPU-a", "GPU-b", "GPU-c"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-c,0")
    src = open_nvml({"gpu"}, nvml=nv)
    assert [d.uuid for d in src._devices] == ["GPU-c", "GPU-a"]
    nv.energy_mj["GPU-b"] += 10**6  # invisible device: not counted
    assert src.read()["gpu/measured:nvml_counter"] == 0.0


def test_ddp_rank_meters_only_its_device(monkeypatch):
    nv = StubNvml(["GPU-a", "GPU-b"])
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    src = open_nvml({"gpu"}, nvml=nv)
    assert [d.uuid for d in src._devices] == ["GPU-b"]


def test_unavailable_reasons():
    with pytest.raises(SourceUnavailable, match="nvmlInit failed: Driver Not Loaded"):
        open_nvml({"gpu"}, nvml=StubNvml([], fail_init=True))
    nv = StubNvml([])
    with pytest.raises(SourceUnavailable, match="no visible NVIDIA GPU"):
        open_nvml({"gpu"}, nvml=nv)
    assert nv.shutdowns == 1
