"""Preemption: SIGTERM, SIGUSR1 and submitit's preemption/timeout signal (SIGUSR2, or `SUBMITIT_PREEMPT_SIGNAL`)
ask the loop to checkpoint at the next step boundary.

The handler only sets a flag (no work inside a signal handler). The loops call `poll()` between steps: across
ranks it all-reduces the flag, so a signal to any one rank stops every rank at the same step. The loop writes its
checkpoint and raises `Preempted`; the runner hands the signal on to a handler installed before ours (submitit's
requeue, on its first task) and exits with `REQUEUE_EXIT_CODE` on every rank without writing summary.json (the
run is unfinished). Rerunning the same command in the same folder resumes.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

REQUEUE_EXIT_CODE = 3


def submitit_signal() -> signal.Signals:
    """The signal submitit (1.5) sends for preemption and timeout: SIGUSR2 unless SUBMITIT_PREEMPT_SIGNAL says."""
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2").upper()
    try:
        return signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except KeyError:
        raise ValueError(f"SUBMITIT_PREEMPT_SIGNAL={name!r} is not a signal; allowed: e.g. USR2, USR1, TERM") from None


def signals() -> tuple[signal.Signals, ...]:
    return tuple(dict.fromkeys((signal.SIGTERM, signal.SIGUSR1, submitit_signal())))


SIGNALS = signals()


class Preempted(Exception):
    def __init__(self, signum: int, step: int, reason: str | None = None) -> None:
        why = reason or f"preempted by {signal.Signals(signum).name}"
        super().__init__(f"{why} at step {step}; checkpoint written")
        self.signum, self.step = signum, step


class PreemptionFlag:
    """Installs flag-setting handlers for SIGNALS while active (a context manager); main thread only."""

    active = True  # NEVER is not: loops outside the runner poll it without a collective

    def __init__(self) -> None:
        self.signum: int | None = None  # this rank's signal
        self.agreed: int | None = None  # the signal every rank stops for (after `poll`)
        self.previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """This rank was signalled (a local view: loops stop on `poll()`, which every rank agrees on)."""
        return self.signum is not None

    def poll(self) -> bool:
        """True on every rank once any rank was signalled (a max all-reduce under torch.distributed); call it at
        the same point on every rank. After True, `agreed` holds the signal number."""
        if not self.active:
            return False
        from experiments.distributed import agree_max

        self.agreed = agree_max(self.signum or 0) or None
        return self.agreed is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    def __enter__(self) -> PreemptionFlag:
        for sig in signals():
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


class _Never(PreemptionFlag):
    active = False


NEVER = _Never()  # a flag that is never raised, for loops run outside the runner
