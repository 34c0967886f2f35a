"""Data parallel in the research loops (OFA's train_schedule, ...) with gloo, 2 processes: the same sub-nets on
every rank, gradients averaged once per step, synchronised BatchNorm; the result equals one process on the same
global batch. Also: preemption agreed across ranks, SLURM's environment mapped onto torch.distributed."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from experiments import distributed
from once_for_all import OFASupernet
from once_for_all.schedule import Phase
from once_for_all.training import Batches, OptimConfig, train_schedule
from tests.once_for_all.ofa_testutils import SPEC_1D

PHASES = [Phase("full", 2, 0.05, resolutions=(16,)),  # the teacher of the next phase (KD through synced BNs)
          Phase("elastic", 2, 0.05, kernel_sizes="all", expand_ratios="all", depths="all", subnets_per_step=2)]


def _ofa(rank: int, world: int) -> tuple[dict, list[dict]]:
    """Train a tiny 1-D supernet: global batch 8, this rank's shard, grads averaged, BN synced when world > 1.
    In float64: 16 steps of this small net amplify fp32 rounding (summation order) to ~1e-3, which would hide a
    real error; in float64 one process and two ranks agree to ~1e-16."""
    torch.manual_seed(0)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        net = distributed.convert_sync_bn(OFASupernet(SPEC_1D))
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(32, 1, 16, generator=g), torch.randint(0, 5, (32,), generator=g)
        results = train_schedule(net, PHASES, Batches(x, y, 8, rank, world), seed=3, kd_weight=1.0,
                                 optim=OptimConfig(), grad_sync=distributed.average_gradients)
    finally:
        torch.set_default_dtype(before)
    return net.state_dict(), [r["counters"] for r in results]


def _gloo(rank: int, world: int, port: int, fn, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    result = fn(rank, world)
    torch.save(result, f"{out}.{rank}")
    dist.barrier()
    dist.destroy_process_group()


def _spawn(fn, tmp_path, salt: int) -> list:
    out = str(tmp_path / fn.__name__)
    mp.spawn(_gloo, args=(2, 29700 + (os.getpid() + salt) % 800, fn, out), nprocs=2, join=True)
    return [torch.load(f"{out}.{r}", weights_only=True) for r in range(2)]


def test_ofa_supernet_two_ranks_equal_one_process(tmp_path):
    torch.set_num_threads(1)
    single, single_counters = _ofa(0, 1)
    ranks = _spawn(_ofa, tmp_path, 0)
    for k, v in single.items():
        assert torch.equal(ranks[0][0][k], ranks[1][0][k]), k  # both ranks hold the same net
        assert torch.allclose(ranks[0][0][k], v, rtol=1e-10, atol=1e-12), k
    for ddp, one in zip(ranks[0][1], single_counters):  # every rank's work counted, once
        assert {k: v for k, v in ddp.items() if k != "flops_train"} == {k: v for k, v in one.items()
                                                                        if k != "flops_train"}
        # 2 x FLOPs at batch 4 is the work done; FlopCounterMode's count is not exactly linear in the batch
        assert ddp["flops_train"] == pytest.approx(one["flops_train"], rel=0.02)


def _preempt(rank: int, world: int) -> list[int | None]:
    """Rank 1 alone is signalled at step 2: every rank's poll agrees from that step on."""
    from experiments.preemption import PreemptionFlag

    flag, seen = PreemptionFlag(), []
    for step in range(4):
        if rank == 1 and step == 2:
            flag.signum = 15
        seen.append(flag.agreed if flag.poll() else None)
    return seen


def test_preemption_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    assert _spawn(_preempt, tmp_path, 1) == [[None, None, 15, 15]] * 2


def test_indivisible_global_batch_is_refused():
    with pytest.raises(ValueError, match="batch_size=9 over 2 ranks"):
        Batches(torch.zeros(20, 1, 4), torch.zeros(20), 9, 0, 2)
