"""Carbon-aware pausing on a cluster: at a high-carbon window a SLURM job checkpoints and requeues itself to begin
at the next allowed (low-carbon) window instead of sleeping on an allocated node; elsewhere the run waits.

    gate(plan, step, tag)   # at an epoch boundary, after the checkpoint: returns, waits, or raises Preempted

The decision (`decide`) is a pure function of the plan, the time and whether a scheduler exists; rank 0 takes it
and broadcasts it, so every rank waits, requeues or stops together. The request goes through a `Scheduler`
(`SlurmScheduler` runs `scontrol`; tests pass a fake).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from experiments import distributed
from experiments.preemption import Preempted
from meter.schedule import Plan, wait_until_allowed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    action: str  # "run" | "wait" (sleep here until `begin`) | "requeue" (leave, begin again at `begin`) | "stop"
    begin: float | None = None  # unix time of the next allowed window


def decide(plan: Plan | None, now: float, can_requeue: bool) -> Decision:
    """What to do at `now`: run when the plan allows it; else requeue (a scheduler exists) or wait until the next
    allowed window; stop (resumably) when the plan has none left."""
    if plan is None or not plan.should_pause(now):
        return Decision("run")
    begin = plan.next_allowed_time(now)
    if begin is None:
        return Decision("stop")
    return Decision("requeue" if can_requeue else "wait", begin)


def slurm_time(unix: float) -> str:
    """SLURM's StartTime format, in the local time zone slurmctld reads it in."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(unix))


@dataclass
class SlurmScheduler:
    """Requeue this job held, move its StartTime to `begin`, release it: it leaves the node now (the requeue ends
    the running tasks, after our checkpoint) and is eligible again only from `begin`."""

    job_id: str
    run: Callable[..., object] = field(default=subprocess.run, repr=False)

    @classmethod
    def from_env(cls, env=os.environ) -> SlurmScheduler | None:
        if "SLURM_JOB_ID" not in env:
            return None
        array = env.get("SLURM_ARRAY_JOB_ID")
        return cls(f"{array}_{env['SLURM_ARRAY_TASK_ID']}" if array else env["SLURM_JOB_ID"])

    def commands(self, begin: float) -> list[list[str]]:
        return [["scontrol", "requeuehold", self.job_id],
                ["scontrol", "update", f"JobId={self.job_id}", f"StartTime={slurm_time(begin)}"],
                ["scontrol", "release", self.job_id]]

    def requeue_at(self, begin: float) -> None:
        for cmd in self.commands(begin):
            self.run(cmd, check=True, timeout=60)


def gate(plan: Plan | None, step: int, tag: str, scheduler: SlurmScheduler | None = None,
         now: Callable[[], float] = time.time) -> None:
    """At an epoch boundary (after the checkpoint): return to train, wait for the window, or raise Preempted after
    rank 0 asked the scheduler to requeue the job at the next window (`scheduler`: SLURM's when under SLURM)."""
    if plan is None:
        return
    scheduler = scheduler if scheduler is not None else SlurmScheduler.from_env()
    d = distributed.broadcast_object(decide(plan, now(), scheduler is not None))  # rank 0's clock decides
    if d.action == "run":
        return
    log.info("%s: carbon-aware schedule pauses at step %d (%s)", tag, step, d.action)
    if d.action == "wait" and wait_until_allowed(plan):
        return
    if d.action == "requeue":
        if distributed.is_main():
            scheduler.requeue_at(d.begin)
        raise Preempted(signal.SIGTERM, step, f"the carbon-aware schedule requeued the job to begin at "
                                              f"{slurm_time(d.begin)}")
    raise Preempted(signal.SIGTERM, step, "the carbon-aware schedule has no allowed hours left")
