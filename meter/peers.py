"""Other metered jobs on this host: one lease file per live `Meter` in a host-wide folder.

Energy read from a shared counter (RAPL bills the whole socket) or estimated with the machine's idle power is the
machine's, not one job's: with N jobs at once (`launcher=joblib`) each job is billed the shared part in full and
their sum counts it N times. Splitting it by CPU share would turn a measured figure into a modelled one, so the
meter labels instead: a window records how many other metered jobs ran during it (`energy/overlapping_jobs`), and
sums of overlapping rows are refused (meter.model_card) unless asked for as an upper bound. The ranks of one
torchrun job (same TORCHELASTIC_RUN_ID) are one job: their energy is summed once, not overlapping.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

FOLDER = Path(tempfile.gettempdir()) / "leanlab-meter-leases"


def _group() -> str:
    return os.environ.get("TORCHELASTIC_RUN_ID", "") or f"pid{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class Lease:
    """Held while a Meter runs; `others()` counts the live leases of other jobs (a dead process's are removed)."""

    def __init__(self, folder: Path | None = None) -> None:
        folder = folder if folder is not None else FOLDER
        self.folder: Path | None = folder
        self.name = f"{os.getpid()}_{_group()}_{uuid.uuid4().hex[:8]}"
        self.group = self.name.split("_")[1]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / self.name).touch()
        except OSError:  # no writable temp folder: overlap is not detected (others() says 0)
            self.folder = None

    def others(self) -> int:
        if self.folder is None:
            return 0
        groups = set()
        try:
            names = os.listdir(self.folder)
        except OSError:
            return 0
        for name in names:
            pid, _, rest = name.partition("_")
            group = rest.rsplit("_", 1)[0]
            if name == self.name or group == self.group or not pid.isdigit():
                continue
            if _alive(int(pid)):
                groups.add(group)
            else:
                (self.folder / name).unlink(missing_ok=True)
        return len(groups)

    def release(self) -> None:
        if self.folder is not None:
            (self.folder / self.name).unlink(missing_ok=True)
