"""Data parallel in the research loops (OFA's train_schedule, ...) with gloo, 2 processes: the same sub-nets on
every rank, gradients averaged once per step, synchronised BatchNorm; the result equals one process on the same
global batch. Also: preemption agreed across ranks, SLURM's environment mapped onto torch.distributed."""

import os
from pathlib import Path

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
    In float64: 8 steps of this small net amplify fp32 rounding (summation order) to ~1e-3, which would hide a
    real error; in float64 one process and two ranks agree to ~1e-16."""
    torch.manual_seed(0)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        net = distributed.convert_sync_bn(OFASupernet(SPEC_1D))
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(16, 1, 16, generator=g), torch.randint(0, 5, (16,), generator=g)
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


def test_indivisible_global_batch_is_refused():
    with pytest.raises(ValueError, match="batch_size=9 over 2 ranks"):
        Batches(torch.zeros(20, 1, 4), torch.zeros(20), 9, 0, 2)


def _fit(rank: int, world: int, ckpt: str, kill_at: int | None):
    """The LTH/MoE loop (`fit`, DDP) on a BatchNorm MLP, checkpointing into `ckpt`; rank 1 alone gets SIGTERM
    at step `kill_at`. Returns ("preempted", step) or ("done", state_dict)."""
    import signal

    from experiments.callbacks import Callback
    from experiments.config import OptimCfg
    from experiments.data import Splits
    from experiments.preemption import Preempted, PreemptionFlag
    from experiments.trainer import fit
    from meter import Meter, MeterConfig

    class Kill(Callback):
        def on_step_start(self, loop):
            if rank == 1 and loop.step == kill_at:
                os.kill(os.getpid(), signal.SIGTERM)

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 4))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 12, generator=g)
    data = Splits(x[:80], x[:80, :4].argmax(1), x[80:100], x[80:100, :4].argmax(1), x[100:], x[100:, :4].argmax(1))
    optim = OptimCfg(name="sgd", lr=0.05, momentum=0.9, batch_size=20, epochs=3, eval_every=4)
    with Meter(MeterConfig(enabled=False), out_dir=None) as meter, PreemptionFlag() as flag:
        try:
            fit(model, data, optim, seed=1, total_steps=12, meter=meter, tag="t", progress=False,
                checkpoint_path=Path(ckpt), preemption=flag, callbacks=[Kill()])
        except Preempted as e:
            return "preempted", e.step
    return "done", model.state_dict()


def _rank_energy(rank: int) -> dict:
    """A research loop's window through RankSummedMeter: each rank metered its own figures (rank r: 10 + r J of
    GPU, and local rank 0 alone the socket's RAPL); the loop sees the sum, once."""
    from contextlib import contextmanager

    from meter import Measurement

    class OwnFigures:
        @contextmanager
        def window(self, name):
            comps = {"gpu/measured:nvml_counter": 10.0 + rank, **({"cpu/measured:rapl": 4.0} if rank == 0 else {})}
            m = Measurement(name=name)
            yield m
            m.joules, m.components, m.seconds, m.method = sum(comps.values()), comps, 1.0 + rank, "x"

    with distributed.summed_meter(OwnFigures()).window("epoch0") as m:
        pass
    return {"joules": m.joules, "components": m.components, "seconds": m.seconds}


def _cut_resume_whole(rank, world):
    """In one process group: run cut by rank 1's SIGTERM, its rerun, an uninterrupted run; a summed window."""
    ckpt = os.environ["LEANLAB_TEST_CKPT"]
    return [_fit(rank, world, ckpt, kill_at=6), _fit(rank, world, ckpt, kill_at=6),
            _fit(rank, world, ckpt + ".whole", kill_at=None), _rank_energy(rank)]


def test_sigterm_to_one_rank_checkpoints_both_and_resume_is_bit_identical(tmp_path, monkeypatch):
    """LTH family (the shared loop): rank 1's SIGTERM during step 6 stops both ranks after it (step 7,
    mid-epoch), one checkpoint; rerunning completes bit-identical to an uninterrupted 2-process run. And a
    research loop's energy window sums the ranks' own figures once."""
    monkeypatch.setenv("LEANLAB_TEST_CKPT", str(tmp_path / "ckpt.pt"))
    ranks = _spawn(_cut_resume_whole, tmp_path, 2)
    assert [r[0] for r in ranks] == [("preempted", 7)] * 2  # the same step on both ranks
    for (kind_r, resumed), (kind_w, whole) in (r[1:3] for r in ranks):  # step 6 is behind the rerun: no signal
        assert kind_r == kind_w == "done"
        for k, v in whole.items():
            assert torch.equal(resumed[k], v), k
    weights = [k for k in ranks[0][1][1] if "running" not in k and "num_batches" not in k]  # BN stats: per rank
    assert all(torch.equal(ranks[0][1][1][k], ranks[1][1][1][k]) for k in weights)
    energy = {"joules": 10.0 + 11.0 + 4.0, "seconds": 2.0,  # each rank's own figures, summed once; longest time
              "components": {"gpu/measured:nvml_counter": 21.0, "cpu/measured:rapl": 4.0}}
    assert ranks[0][3] == ranks[1][3] == energy


def _af_backbone(rank: int, world: int) -> dict:
    """Adaptive frames' supervised stage (fit_epochs via pretrain_backbone) on a BN CNN: global batch 6 of 16
    clips (the last partial batch of 4 divides over 2 ranks), this rank's shard, grads averaged, BN synced."""
    from adaptive_frames.backbones import TinyCNN
    from adaptive_frames.data.loader import ClipLoader
    from adaptive_frames.stages import Compute, pretrain_backbone

    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # exactness (see _ofa)
    try:
        torch.manual_seed(0)
        net = distributed.convert_sync_bn(TinyCNN(3, 4, width=4))
        g = torch.Generator().manual_seed(2)
        clips, labels = torch.randn(16, 3, 3, 12, 12, generator=g), torch.randint(0, 4, (16,), generator=g)
        loader = ClipLoader(clips, labels, 6, shuffle=True, seed=5, rank=rank, world_size=world)
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        sync = distributed.average_optimizer_gradients if world > 1 else None
        pretrain_backbone(net, 8, loader, opt, epochs=2, compute=Compute(grad_sync=sync))
    finally:
        torch.set_default_dtype(before)
    return net.state_dict()


@pytest.mark.slow  # the default suite covers the same hook through OFA
def test_af_stage_two_ranks_equal_one_process(tmp_path):
    single = _af_backbone(0, 1)
    ranks = _spawn(_af_backbone, tmp_path, 6)
    for k, v in single.items():
        assert torch.equal(ranks[0][k], ranks[1][k]) or "running" in k or "num_batches" in k, k
        assert torch.allclose(ranks[0][k].double(), v.double(), rtol=1e-10, atol=1e-12), k


def _af_policy(rank: int, world: int, budget: bool = False) -> dict:
    """Adaptive frames' policy stage (ST Gumbel-softmax, efficiency + usage-balance terms) on frozen backbones:
    global batch 8 of 16 clips, this rank's shard; the Gumbel noise drawn for the global batch and sliced, the
    usage statistics summed over the ranks, grads averaged. Returns the policy's weights."""
    from adaptive_frames.data.loader import ClipLoader
    from adaptive_frames.stages import Compute, PolicyTrainConfig, precompute, train_policy
    from sparse_moe.losses import all_reduce_sum
    from tests.adaptive_frames.af_testutils import small_model

    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # exactness (see _ofa)
    try:
        model = distributed.convert_sync_bn(small_model(skips=(1, 2)))
        g = torch.Generator().manual_seed(4)
        clips, labels = torch.randn(16, 5, 1, 16, 16, generator=g), torch.randint(0, 3, (16,), generator=g)
        cache = precompute(model, clips)
        loader = ClipLoader(clips, labels, 8, shuffle=True, seed=3, rank=rank, world_size=world)
        opt = torch.optim.Adam(model.policy.parameters(), lr=1e-2)
        sync = distributed.average_optimizer_gradients if world > 1 else None
        target = 0.4 * model.dense_flops(clips.shape[1]) / 1e9 if budget else 0.0
        cfg = PolicyTrainConfig(epochs=2, tau0=1.0, gamma=0.0, lam=0.1, balance=0.5, budget_gflops=target,
                                budget_lr=0.2)
        hist = train_policy(model, loader, opt, cfg, cache=cache, generator=torch.Generator().manual_seed(7),
                            compute=Compute(grad_sync=sync), shard=(rank, world),
                            stats_sum=all_reduce_sum if world > 1 else None)
    finally:
        torch.set_default_dtype(before)
    return {**model.policy.state_dict(), "lam": torch.tensor([h["lam"] for h in hist])}


def _af_policy_budget(rank: int, world: int) -> dict:
    return _af_policy(rank, world, budget=True)


@pytest.mark.slow  # the default suite covers the same hooks through OFA and MoE
@pytest.mark.parametrize("fn", [_af_policy, _af_policy_budget])
def test_af_policy_stage_two_ranks_equal_one_process(tmp_path, fn):
    """Gumbel noise, usage balance and the budget controller's FLOPs are batch-level: per shard, 2 ranks would not
    train what 1 process does (and each rank's lam would drift its own way)."""
    single = fn(0, 1)
    ranks = _spawn(fn, tmp_path, 7)
    if fn is _af_policy_budget:
        assert single["lam"].min() != single["lam"].max()  # the controller moved lam: the equality covers it
    for k, v in single.items():
        assert torch.equal(ranks[0][k], ranks[1][k]) or "running" in k or "num_batches" in k, k
        assert torch.allclose(ranks[0][k].double(), v.double(), rtol=1e-10, atol=1e-12), k


def _nan_on_rank1(rank: int, world: int) -> list:
    """Rank 1 alone meets a non-finite loss (the shared loop: at its 3rd step; OFA's: at its first), and both ranks
    must stop there with the error (a rank that raised alone would leave the other waiting in a collective)."""
    from experiments.config import OptimCfg
    from experiments.data import Splits
    from experiments.objectives import Classification
    from experiments.trainer import NonFiniteLossError, fit
    from meter import Meter, MeterConfig
    from once_for_all.training import train_phase

    class NaNOnRank1(Classification):
        calls = 0

        def loss(self, model, xb, yb):
            self.calls += 1
            loss = super().loss(model, xb, yb)
            return loss * float("nan") if rank == 1 and self.calls == 3 else loss

    out = []
    torch.manual_seed(0)
    x = torch.randn(80, 12, generator=torch.Generator().manual_seed(0))
    data = Splits(x[:48], x[:48, :4].argmax(1), x[48:64], x[48:64, :4].argmax(1), x[64:], x[64:, :4].argmax(1))
    model = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    try:
        with Meter(MeterConfig(enabled=False), out_dir=None) as meter:
            fit(model, data, OptimCfg(name="sgd", lr=0.05, batch_size=8, epochs=2), seed=1, total_steps=12,
                tag="t", meter=meter, progress=False, objective=NaNOnRank1())
        out.append("no error")
    except NonFiniteLossError as e:
        out.append(str(e))

    net = OFASupernet(SPEC_1D)
    g = torch.Generator().manual_seed(1)
    xs, ys = torch.randn(32, 1, 16, generator=g), torch.randint(0, 5, (32,), generator=g)
    if rank == 1:
        xs[:] = float("nan")  # rank 1's every shard: its first loss is nan (rank 0's is finite)
    try:
        train_phase(net, Phase("full", 1, 0.05), Batches(xs, ys, 8, rank, world), seed=0, optim=OptimConfig(),
                    grad_sync=distributed.sync_step)
        out.append("no error")
    except FloatingPointError as e:
        out.append(str(e))
    return out


@pytest.mark.slow  # multi-process cases beyond one per family run in the slow suite
def test_a_non_finite_loss_on_one_rank_stops_every_rank_at_that_step(tmp_path):
    ranks = _spawn(_nan_on_rank1, tmp_path, 8)
    for rank, (trainer, ofa) in enumerate(ranks):
        assert "not finite on at least one of 2 ranks at step 2" in trainer, (rank, trainer)
        assert "phase 'full' step 0:" in ofa and "not finite on at least one rank" in ofa, (rank, ofa)


SLURM_SCRIPT = """
import json, os, sys
import torch.distributed as dist
from experiments import distributed
with distributed.process_group():
    print(json.dumps({"rank": dist.get_rank(), "world": dist.get_world_size(), "local": os.environ["LOCAL_RANK"],
                      "master": os.environ["MASTER_ADDR"], "max": distributed.agree_max(int(os.environ["SLURM_PROCID"]) + 5)}))
"""


@pytest.mark.slow  # two fresh interpreters; the default suite forms groups through mp.spawn above
def test_process_group_from_faked_slurm_environment(tmp_path):
    """Two tasks of one srun step, no torchrun: rank, world, local rank and master come from SLURM_* variables."""
    import json
    import subprocess
    import sys

    from tests.helpers import ROOT

    base = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")}
    base.update(PYTHONPATH=str(ROOT), SLURM_JOB_ID="4242", SLURM_NTASKS="2", SLURM_STEP_NUM_TASKS="2",
                SLURM_JOB_NUM_NODES="1", SLURM_JOB_NODELIST="localhost", OMP_NUM_THREADS="1",
                MASTER_PORT=str(29700 + (os.getpid() + 5) % 800))
    procs = [subprocess.Popen([sys.executable, "-c", SLURM_SCRIPT], env={**base, "SLURM_PROCID": str(r),
                                                                          "SLURM_LOCALID": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    got = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
    assert got == [{"rank": r, "world": 2, "local": str(r), "master": "localhost", "max": 6} for r in range(2)]


@pytest.mark.slow  # a whole debug=fast OFA job on 2 ranks (the repro: rank 1 read final.pt too early)
def test_torchrun_ofa_job_writes_one_set_of_records(tmp_path):
    import json
    import subprocess
    import sys

    from tests.helpers import ROOT

    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "CI": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "experiments.run",
         "experiment=ofa_mnist1d", "debug=fast", "progress=false", "method.baselines=[]", f"hydra.run.dir={out}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(tmp_path.rglob("summary.json")) == [out / "summary.json"]
    rows = json.loads((out / "summary.json").read_text())["records"]
    assert {r["runtime/world_size"] for r in rows} == {2}
    kinds = [r["ofa/kind"] for r in rows]
    assert kinds.count("supernet") == 1 and len(kinds) == len(set(map(str, [(r["ofa/kind"], r["ofa/subnet"],
                                                                             r.get("ofa/target_fraction"))
                                                                            for r in rows])))
    supernet = next(r for r in rows if r["ofa/kind"] == "supernet")
    assert supernet["energy/joules"] > 0 and supernet["flops/train_total"] > 0


def test_submitit_preemption_signal_is_caught(monkeypatch):
    """submitit 1.5 sends SIGUSR2 (or SUBMITIT_PREEMPT_SIGNAL) for preemption and timeout: the flag catches it."""
    import signal

    from experiments.preemption import PreemptionFlag, signals, submitit_signal

    assert submitit_signal() == signal.SIGUSR2 and signal.SIGUSR2 in signals()
    with PreemptionFlag() as flag:
        signal.raise_signal(signal.SIGUSR2)
        assert flag.requested and flag.poll() and flag.agreed == signal.SIGUSR2
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "USR1")
    assert submitit_signal() == signal.SIGUSR1
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "NOPE")
    with pytest.raises(ValueError, match="SUBMITIT_PREEMPT_SIGNAL='NOPE'"):
        submitit_signal()


def test_process_group_picks_the_local_gpu_before_any_collective(monkeypatch):
    """On a CUDA node the first collective (run.py broadcasts the run folder as an object, which NCCL stages on the
    *current* GPU) must find each rank on its own GPU: set_device(LOCAL_RANK) comes before init. Faked CUDA."""
    import torch.distributed as dist

    from experiments import distributed

    calls = []
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_RANK", "5")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", d)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: calls.append(("init", backend)))
    monkeypatch.setattr(dist, "barrier", lambda: None)
    monkeypatch.setattr(dist, "destroy_process_group", lambda: calls.append(("destroy",)))
    with distributed.process_group():
        pass
    assert calls == [("set_device", 5), ("init", "cpu:gloo,cuda:nccl"), ("destroy",)]
