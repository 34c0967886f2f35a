"""Carbon-aware pausing on a cluster: the decision, and the requeue request a SLURM job makes (fake scheduler)."""

import time

import pytest

from experiments.carbon_requeue import Decision, SlurmScheduler, decide, gate, slurm_time
from experiments.preemption import Preempted
from meter.schedule import Plan

T0 = 1_700_000_000.0
PLAN = Plan([(T0, T0 + 3600), (T0 + 5 * 3600, T0 + 6 * 3600)])  # allowed: hour 0 and hour 5


@pytest.mark.parametrize("now, can_requeue, expected", [
    (T0 + 10, True, Decision("run")),
    (T0 + 3600, True, Decision("requeue", T0 + 5 * 3600)),  # high-carbon hour: leave, begin at hour 5
    (T0 + 3600, False, Decision("wait", T0 + 5 * 3600)),  # not under SLURM: sleep until then
    (T0 + 6 * 3600, True, Decision("stop")),  # no allowed hour left
])
def test_decision(now, can_requeue, expected):
    assert decide(PLAN, now, can_requeue) == expected
    assert decide(None, now, can_requeue) == Decision("run")


class FakeRun:
    def __init__(self):
        self.calls = []

    def __call__(self, cmd, check, timeout):
        self.calls.append(cmd)


def test_high_carbon_window_requeues_the_job_at_the_next_window():
    run = FakeRun()
    scheduler = SlurmScheduler("4242", run=run)
    with pytest.raises(Preempted, match="requeued the job to begin at") as e:
        gate(PLAN, 17, "unit", scheduler, now=lambda: T0 + 2 * 3600)
    assert e.value.step == 17
    begin = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(T0 + 5 * 3600))
    assert run.calls == [["scontrol", "requeuehold", "4242"],
                         ["scontrol", "update", "JobId=4242", f"StartTime={begin}"],
                         ["scontrol", "release", "4242"]]
    assert slurm_time(T0 + 5 * 3600) == begin


def test_allowed_window_and_exhausted_plan_ask_nothing():
    run = FakeRun()
    gate(PLAN, 3, "unit", SlurmScheduler("1", run=run), now=lambda: T0 + 60)  # returns: train on
    with pytest.raises(Preempted, match="no allowed hours left"):
        gate(PLAN, 3, "unit", SlurmScheduler("1", run=run), now=lambda: T0 + 7 * 3600)
    assert run.calls == []


def test_scheduler_from_slurm_environment():
    assert SlurmScheduler.from_env({}) is None
    assert SlurmScheduler.from_env({"SLURM_JOB_ID": "77"}).job_id == "77"
    array = {"SLURM_JOB_ID": "80", "SLURM_ARRAY_JOB_ID": "79", "SLURM_ARRAY_TASK_ID": "1"}
    assert SlurmScheduler.from_env(array).job_id == "79_1"
