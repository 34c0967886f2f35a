"""What the machine is (CPU model and count, memory, OS, Python, this package's version) for exported records."""

from __future__ import annotations

import os
import platform
from collections import Counter
from functools import lru_cache
from importlib import metadata
from pathlib import Path


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what `platform` knows, else ""."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def ram_total_gib() -> float | None:
    """Physical memory of the machine, GiB (CodeCarbon's `ram_total_size` unit); None where unknown."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def tracker_version() -> str:
    """'leanlab-meter <version>' (the installed leanlab distribution's version, or 'unknown')."""
    try:
        return f"leanlab-meter {metadata.version('leanlab')}"
    except metadata.PackageNotFoundError:
        return "leanlab-meter unknown"


def gpu_model(names: list[str]) -> str:
    """CodeCarbon's form: '4 x NVIDIA A40', or '1 x A + 2 x B' for a mix."""
    return " + ".join(f"{n} x {name}" for name, n in Counter(names).items())


def hardware_used(names: list[str]) -> str:
    """One line for a model card: the CPU, and the metered GPUs if any."""
    cpu = f"{os.cpu_count() or '?'} x {cpu_model() or 'unknown CPU'} (logical cores)"
    return f"{cpu}; {gpu_model(names)}" if names else cpu
