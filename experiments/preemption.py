"""Preemption: SIGTERM / SIGUSR1 (SLURM's warning signals) ask the loop to checkpoint at the next step boundary.

The handler only sets a flag (no work inside a signal handler). The trainer checks `requested` between steps,
writes its checkpoint and raises `Preempted`; the runner then exits with `REQUEUE_EXIT_CODE` without writing
summary.json (the run is unfinished), or hands the signal on to a handler installed before ours (submitit's
requeue). Rerunning the same command in the same folder resumes.
"""

from __future__ import annotations

import signal
from types import FrameType

REQUEUE_EXIT_CODE = 3
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(Exception):
    def __init__(self, signum: int, step: int, reason: str | None = None) -> None:
        why = reason or f"preempted by {signal.Signals(signum).name}"
        super().__init__(f"{why} at step {step}; checkpoint written")
        self.signum, self.step = signum, step


class PreemptionFlag:
    """Installs flag-setting handlers for SIGNALS while active (a context manager); main thread only."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    def __enter__(self) -> PreemptionFlag:
        for sig in SIGNALS:
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def forward(self, signum: int) -> bool:
        """Call the handler that was installed before ours (e.g. submitit's requeue); True if there was one."""
        handler = self.previous.get(signum)
        if callable(handler):
            handler(signum, None)
            return True
        return False


NEVER = PreemptionFlag()  # a flag that is never raised, for loops run outside the runner
