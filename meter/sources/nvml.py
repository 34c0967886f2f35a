"""NVIDIA GPU energy through NVML (`nvidia-ml-py`, imported lazily).

Per device: the total-energy counter (`nvmlDeviceGetTotalEnergyConsumption`, mJ, Volta and newer, updated
about every 100 ms) read at window edges -> `measured:nvml_counter`; where the counter is unsupported (older
GPUs), power (`nvmlDeviceGetPowerUsage`, mW) is polled by the sampler and integrated with the trapezoid rule
-> `measured:nvml_power`. On those pre-Volta parts the reading is near-instantaneous; on Ampere and later it is
a 1 s average, but those always have the counter. Devices follow `CUDA_VISIBLE_DEVICES` (indices or UUIDs);
under DDP (`WORLD_SIZE` > 1) a rank meters only its own `LOCAL_RANK` device, so no GPU is counted twice.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from meter.sources.base import SOURCES, EnergySource, SourceUnavailable

COUNTER, POWER = "measured:nvml_counter", "measured:nvml_power"


def _load_pynvml():
    import pynvml  # lazily: importing the meter never needs a GPU stack

    return pynvml


@dataclass
class _Device:
    handle: object
    uuid: str
    counter: bool
    start_mj: int = 0
    # power polling state
    last_t: float = 0.0
    last_w: float = 0.0
    joules: float = 0.0


class NvmlSource(EnergySource):
    name = "nvml"

    def __init__(self, nvml, devices: list[_Device], clock=time.monotonic) -> None:
        self._nvml = nvml
        self._devices = devices
        self._clock = clock
        self.device_names: list[str] = []  # for exported records; filled by open_nvml
        self._lock = threading.Lock()
        self.update_period_s = 0.1  # counter update period (FIELD-NOTES); polled devices: the sample period

    def keys(self) -> list[str]:
        return [f"gpu/{m}" for m in dict.fromkeys(COUNTER if d.counter else POWER for d in self._devices)]

    def _power_w(self, d: _Device) -> float:
        return self._nvml.nvmlDeviceGetPowerUsage(d.handle) / 1000.0

    def poll(self) -> None:
        now = self._clock()
        polled = [(d, self._power_w(d)) for d in self._devices if not d.counter]  # device calls outside the lock
        with self._lock:
            for d, w in polled:
                d.joules += 0.5 * (w + d.last_w) * (now - d.last_t)
                d.last_t, d.last_w = now, w

    def read(self) -> dict[str, float]:
        now = self._clock()
        out = {k: 0.0 for k in self.keys()}
        for d in self._devices:
            if d.counter:
                out[f"gpu/{COUNTER}"] += (self._nvml.nvmlDeviceGetTotalEnergyConsumption(d.handle) - d.start_mj) / 1000.0
        with self._lock:
            for d in self._devices:
                if not d.counter:  # extrapolate from the last poll; no device call at a window edge
                    out[f"gpu/{POWER}"] += d.joules + d.last_w * max(0.0, now - d.last_t)
        return out

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001  shutting down is best effort
            pass


def _visible_handles(nvml) -> list[object]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        return [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
    handles = []
    for tok in (t.strip() for t in env.split(",")):
        if not tok:
            continue
        if tok.isdigit():
            handles.append(nvml.nvmlDeviceGetHandleByIndex(int(tok)))
        elif tok.startswith(("GPU-", "MIG-")):
            handles.append(nvml.nvmlDeviceGetHandleByUUID(tok))
        else:  # CUDA stops at the first invalid entry; so do we
            break
    return handles


def _uuid(nvml, handle) -> str:
    u = nvml.nvmlDeviceGetUUID(handle)
    return u.decode() if isinstance(u, bytes) else str(u)


def _name(nvml, handle) -> str:
    try:
        n = nvml.nvmlDeviceGetName(handle)
    except Exception:  # noqa: BLE001  a name is only for the record
        return "unknown NVIDIA GPU"
    return n.decode() if isinstance(n, bytes) else str(n)


def open_nvml(want: set[str], nvml=None, clock=time.monotonic) -> NvmlSource:
    if "gpu" not in want:
        raise SourceUnavailable("GPU component already covered")
    try:
        nvml = nvml or _load_pynvml()
    except ImportError as e:
        raise SourceUnavailable(f"pynvml not importable ({e}); install nvidia-ml-py") from None
    try:
        nvml.nvmlInit()
    except Exception as e:  # noqa: BLE001  NVMLError_LibraryNotFound, DriverNotLoaded, ...
        raise SourceUnavailable(f"nvmlInit failed: {e} (no NVIDIA driver / GPU)") from None
    try:
        handles = _visible_handles(nvml)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ:
            rank = int(os.environ["LOCAL_RANK"])
            handles = handles[rank : rank + 1]
        if not handles:
            raise SourceUnavailable("no visible NVIDIA GPU (CUDA_VISIBLE_DEVICES or device count)")
        devices, now = [], clock()
        for h in handles:
            try:
                start = nvml.nvmlDeviceGetTotalEnergyConsumption(h)
                devices.append(_Device(h, _uuid(nvml, h), counter=True, start_mj=start))
            except Exception:  # noqa: BLE001  NVMLError_NotSupported on pre-Volta
                w = nvml.nvmlDeviceGetPowerUsage(h) / 1000.0
                devices.append(_Device(h, _uuid(nvml, h), counter=False, last_t=now, last_w=w))
    except SourceUnavailable:
        nvml.nvmlShutdown()
        raise
    except Exception as e:  # noqa: BLE001
        nvml.nvmlShutdown()
        raise SourceUnavailable(f"NVML device query failed: {e}") from None
    src = NvmlSource(nvml, devices, clock)
    src.device_names = [_name(nvml, d.handle) for d in devices]
    return src


@SOURCES.register("nvml")
def _factory(cfg, want: set[str]) -> NvmlSource:
    src = open_nvml(want)
    if any(not d.counter for d in src._devices):
        src.update_period_s = max(src.update_period_s, cfg.sample_period_s)
    return src
