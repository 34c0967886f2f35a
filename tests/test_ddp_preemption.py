"""A SIGTERM to one rank of a 2-process OFA or adaptive-frames job (the whole task path, gloo): both ranks stop at
the same epoch with one checkpoint (exit 3 in the CLI), and the rerun in the same folder ends with the records of
an uninterrupted 2-process run. The trainer's (LTH, MoE) case: tests/test_ddp_families.py, tests/test_ddp_moe.py."""

import os
import signal
from pathlib import Path

import pytest
import torch

import experiments.run as runner
from experiments.preemption import Preempted, PreemptionFlag
from tests.helpers import FAST, compose
from tests.test_ddp_families import _spawn

JOBS = {
    "ofa": [*FAST, "experiment=ofa_mnist1d", "method.baselines=[scratch_corners]"],
    "af": ["experiment=af_needle", "progress=false", "data.num_train=48", "data.num_test=32",
           "method.pretrain_epochs=1", "method.policy_epochs=2", "method.uniform_k=[1]", "method.baselines=[uniform]",
           "method.backbone_cache=false"],
}
KILL_AT = {"ofa": 3, "af": 3}  # rank 1's signal arrives during the 3rd epoch-end check (mid-training)
# What a rerun must reproduce exactly; wall-clock figures (time, energy, latency) differ between any two runs.
TIMED = ("energy/", "time/", "carbon/", "latency/", "infer/", "runtime/", "phase/")
MEASURED = ("joules", "g_co2e")  # e.g. train/g_co2e; run_id differs by folder


class SignalOnRank1(PreemptionFlag):
    """The runner's flag, with rank 1 sending itself SIGTERM just before its `n`-th cross-rank poll."""

    def __init__(self, rank: int, n: int) -> None:
        super().__init__()
        self.rank, self.n, self.polls = rank, n, 0

    def poll(self) -> bool:
        self.polls += 1
        if self.rank == 1 and self.polls == self.n:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().poll()


def _exact(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(TIMED) and not any(w in k for w in MEASURED)
             and not k.endswith("_s") and k != "run_id"} for r in rows]


def _cut_resume_whole(rank: int, world: int) -> list:
    family, out = os.environ["LEANLAB_TEST_FAMILY"], Path(os.environ["LEANLAB_TEST_OUT"])
    overrides = JOBS[family]
    with SignalOnRank1(rank, KILL_AT[family]) as flag:
        try:
            runner.run_job(compose(overrides), out / "cut", preemption=flag)
            cut = ("done", -1)
        except Preempted as e:
            cut = ("preempted", e.step)
    checkpoints = sorted(str(p.relative_to(out)) for p in (out / "cut").rglob("checkpoint.pt"))
    with PreemptionFlag() as flag:
        resumed = runner.run_job(compose(overrides), out / "cut", preemption=flag)
    with PreemptionFlag() as flag:
        whole = runner.run_job(compose(overrides), out / "whole", preemption=flag)
    return [cut, checkpoints, _exact(resumed), _exact(whole)]


@pytest.mark.slow  # three 2-process jobs per family (about a minute each on 2 cores)
@pytest.mark.parametrize("family", sorted(JOBS))
def test_sigterm_to_one_rank_stops_both_at_one_epoch_and_the_rerun_matches_an_uninterrupted_run(
        tmp_path, monkeypatch, family):
    monkeypatch.setenv("LEANLAB_TEST_FAMILY", family)
    monkeypatch.setenv("LEANLAB_TEST_OUT", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    torch.set_num_threads(1)
    ranks = _spawn(_cut_resume_whole, tmp_path, 21 + len(family))
    (cut0, ckpts, resumed, whole), (cut1, _, resumed1, _) = ranks
    assert cut0 == cut1 and cut0[0] == "preempted", (cut0, cut1)  # both ranks, the same step
    assert ckpts, "no checkpoint left behind by the cut run"
    assert resumed == whole and resumed1 == resumed
    assert any(r.get("acc/test") is not None for r in whole)
