"""A run folder's lock: `<folder>/run.lock` holds the pid, host and start time of the run using it.

Created with O_EXCL, so of two runs started into one folder exactly one gets it; the other refuses naming the
holder. A lock whose holder is dead on this host is stale (a killed run) and is taken over with a warning; a
lock from another host cannot be checked and is never taken over (delete it by hand if that run is gone).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

from experiments.errors import RunFolderError

log = logging.getLogger(__name__)
LOCK_NAME = "run.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def holder(folder: Path) -> dict | None:
    """The lock's content, or None when the folder is not locked (an unreadable lock reads as a dead holder)."""
    path = Path(folder) / LOCK_NAME
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"pid": -1, "host": socket.gethostname(), "started": "unknown"}


def is_stale(info: dict) -> bool:
    return info.get("host") == socket.gethostname() and not _alive(int(info.get("pid", -1)))


def describe(info: dict) -> str:
    return f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}"


def refuse_if_held(folder: Path) -> None:
    """Raise RunFolderError if a live run holds `folder` (a check only; `RunLock` takes the lock)."""
    info = holder(folder)
    if info is not None and not is_stale(info) and info.get("pid") != os.getpid():
        raise RunFolderError(f"{folder} is in use by another run ({describe(info)}); wait for it to finish, or "
                             f"choose another hydra.run.dir (delete {Path(folder) / LOCK_NAME} only if that run "
                             "is gone)")


class RunLock:
    """Context manager holding `folder`'s lock; raises RunFolderError if a live run holds it."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.held = False

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        return True

    def __enter__(self) -> RunLock:
        try:
            if not self._create():
                info = holder(self.path.parent) or {}
                refuse_if_held(self.path.parent)
                log.warning("taking over the stale lock of %s (%s is no longer running)", self.path.parent,
                            describe(info))
                self.path.unlink(missing_ok=True)
                if not self._create():  # another run took it over in between
                    refuse_if_held(self.path.parent)
                    raise RunFolderError(f"{self.path.parent} was locked by another run while taking it over")
        except OSError as e:
            raise RunFolderError(f"cannot lock the run folder {self.path.parent}: {e}") from e
        self.held = True
        return self

    def __exit__(self, *exc) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
