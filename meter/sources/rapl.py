"""CPU package (and DRAM) energy from RAPL via Linux powercap (`/sys/class/powercap/intel-rapl:*`, also on AMD).

Only top-level `package-N` domains are summed: `psys` covers the whole SoC and `core`/`uncore` sit inside the
package, so summing them would double count. DRAM subdomains are a separate component. Each counter wraps at
its `max_energy_range_uj` (~262 kJ, i.e. minutes at full load); a wrap between two reads is undone by adding
the range once, which is exact as long as reads are closer than one wrap period; the sampler reads every
`sample_period_s`, and the factory refuses a period that could miss a wrap at 1 kW. The reading is the whole
socket's energy (all processes on it), not this process's share.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from meter.sources.base import SOURCES, EnergySource, SourceUnavailable

METHOD = "measured:rapl"
MAX_PLAUSIBLE_W = 1000.0  # a wrap period is computed at this power to check the poll period


@dataclass
class _Domain:
    path: Path
    component: str  # "cpu" or "dram"
    max_uj: int
    last_uj: int
    total_uj: int = 0


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def _domains(root: Path) -> tuple[list[Path], list[Path], list[str]]:
    """(package dirs, dram dirs, skipped-domain notes) under a powercap root."""
    packages, drams, notes = [], [], []
    for d in sorted(root.glob("intel-rapl:*")):
        name_file = d / "name"
        try:
            name = name_file.read_text().strip()
        except OSError as e:
            notes.append(f"{name_file}: {e.strerror or e}")
            continue
        if d.name.count(":") == 1:  # top level: package-N or psys
            if name.startswith("package"):
                packages.append(d)
            else:
                notes.append(f"{d.name} ({name}) skipped: overlaps the package domains")
        elif name == "dram":
            drams.append(d)
    return packages, drams, notes


class RaplSource(EnergySource):
    name = "rapl"
    update_period_s = 0.001  # RAPL updates about every ms

    def __init__(self, domains: list[_Domain], notes: list[str]) -> None:
        self._domains = domains
        self.notes = notes
        self._lock = threading.Lock()

    def keys(self) -> list[str]:
        return [f"{c}/{METHOD}" for c in dict.fromkeys(d.component for d in self._domains)]

    def read(self) -> dict[str, float]:
        out: dict[str, float] = {k: 0.0 for k in self.keys()}
        with self._lock:
            for d in self._domains:
                raw = _read_int(d.path / "energy_uj")
                delta = raw - d.last_uj
                if delta < 0:  # wrapped once since the last read
                    delta += d.max_uj
                d.total_uj += delta
                d.last_uj = raw
                out[f"{d.component}/{METHOD}"] += d.total_uj * 1e-6
        return out


def open_rapl(root: str | Path, want: set[str], sample_period_s: float) -> RaplSource:
    root = Path(root)
    if os.environ.get("LOCAL_RANK", "0") != "0":
        raise SourceUnavailable(f"local rank {os.environ['LOCAL_RANK']}: the socket's RAPL energy is metered by "
                                "local rank 0 only (avoids N-fold double counting under DDP)")
    if not root.is_dir():
        raise SourceUnavailable(f"{root} does not exist (no powercap/RAPL driver: VM, container or non-Linux)")
    packages, drams, notes = _domains(root)
    if not packages:
        raise SourceUnavailable(f"no package-N domains under {root}")
    domains: list[_Domain] = []
    for component, dirs in (("cpu", packages), ("dram", drams)):
        if component not in want:
            continue
        for d in dirs:
            try:
                raw = _read_int(d / "energy_uj")
                max_uj = _read_int(d / "max_energy_range_uj")
            except PermissionError:
                reason = f"permission denied reading {d / 'energy_uj'} (root only since CVE-2020-8694)"
                if component == "cpu":
                    raise SourceUnavailable(reason) from None
                notes.append(reason + "; DRAM not measured")
                domains = [x for x in domains if x.component != "dram"]
                break
            except (OSError, ValueError) as e:
                reason = f"cannot read {d}: {e}"
                if component == "cpu":
                    raise SourceUnavailable(reason) from None
                notes.append(reason + "; DRAM not measured")
                break
            if max_uj <= 0:
                raise SourceUnavailable(f"{d / 'max_energy_range_uj'} = {max_uj}: cannot undo wraps")
            wrap_s = max_uj * 1e-6 / MAX_PLAUSIBLE_W
            if sample_period_s >= wrap_s:
                raise SourceUnavailable(f"sample_period_s={sample_period_s} could miss a wrap of {d.name} "
                                        f"(wraps every {wrap_s:.1f} s at {MAX_PLAUSIBLE_W:.0f} W)")
            domains.append(_Domain(d, component, max_uj, raw))
    if not domains:
        raise SourceUnavailable(f"RAPL covers none of the components still wanted ({sorted(want)})")
    return RaplSource(domains, notes)


@SOURCES.register("rapl")
def _factory(cfg, want: set[str]) -> RaplSource:
    return open_rapl(cfg.rapl_root, want, cfg.sample_period_s)
