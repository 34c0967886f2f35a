"""DDP on CPU with gloo, 2 processes: same curve as one process at the same global batch; one set of records."""

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from experiments.config import OptimCfg
from experiments.data import Splits
from experiments.trainer import fit
from lth import build_model
from meter import Meter, MeterConfig
from tests.helpers import ROOT

OPTIM = OptimCfg(name="sgd", lr=0.05, momentum=0.9, batch_size=20, epochs=3, eval_every=4)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(240, 40, generator=g)
    y = x[:, :10].argmax(1)
    return Splits(x[:160], y[:160], x[160:200], y[160:200], x[200:], y[200:])


def _train():
    torch.manual_seed(0)
    model = build_model("mlp", 40, 10, hidden=[32])

    class Null:
        def log(self, row, step=None):
            pass

    with Meter(MeterConfig(enabled=False), out_dir=None) as meter:
        result = fit(model, _data(), OPTIM, seed=1, total_steps=24, meter=meter, logger=Null(), tag="d",
                     progress=False)
    return [h["loss/val"] for h in result.history], model.state_dict()


def _worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    losses, state = _train()
    if rank == 0:
        torch.save({"losses": losses, "state": state}, out)
    dist.barrier()  # no rank tears gloo down while a peer is still working (a SIGABRT in CI once)
    dist.destroy_process_group()


def test_ddp_two_processes_match_single_process(tmp_path):
    torch.set_num_threads(1)
    single_losses, single_state = _train()
    out = tmp_path / "ddp.pt"
    port = 29500 + os.getpid() % 1000
    mp.spawn(_worker, args=(2, port, str(out)), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=True)
    assert len(ddp["losses"]) == len(single_losses) == 6
    assert ddp["losses"] == pytest.approx(single_losses, rel=1e-5, abs=1e-6)
    for k, v in single_state.items():
        assert torch.allclose(ddp["state"][k], v, atol=1e-5), k


@pytest.mark.slow  # long subprocess runs; the default suite keeps a shorter case of the same path
def test_torchrun_cli_writes_one_set_of_records(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "CI": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "experiments.run",
         "debug=fast", "progress=false", "method.levels=1", f"hydra.run.dir={out}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = list(tmp_path.rglob("summary.json"))
    assert summaries == [out / "summary.json"]
    rows = json.loads(summaries[0].read_text())["records"]
    kinds = sorted((r["lth/level"], r["lth/kind"]) for r in rows)  # written once, not once per rank
    assert kinds == [(0, "ticket"), (1, "random_prune"), (1, "random_reinit"), (1, "ticket")], kinds
    assert proc.stdout.count("run folder") == 1


RANK_WINDOWS = [  # what each rank's meter saw in one window
    {"cpu/measured:rapl": 10.0, "gpu/measured:nvml_counter": 5.0},  # local rank 0 reads the socket's RAPL
    {"cpu/estimated:cpu_time_linear": 3.0, "gpu/measured:nvml_counter": 7.0, "dram/estimated:ram_rss": 1.0},
]


def _sum_worker(rank, world, port, out):
    from experiments.distributed import sum_measurement
    from meter import Measurement

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    comps = RANK_WINDOWS[rank]
    joules = sum(comps.values())
    m = Measurement(joules=joules, seconds=2.0 + rank, g_co2e=joules * 0.1, components=comps,
                    method="+".join(k.split("/", 1)[1] for k in comps))
    total = sum_measurement(m)
    if rank == 0:
        torch.save(total.to_dict(), out)
    dist.barrier()
    dist.destroy_process_group()


def test_energy_is_summed_once_across_ranks(tmp_path):
    out = tmp_path / "sum.pt"
    mp.spawn(_sum_worker, args=(2, 29500 + (os.getpid() + 7) % 1000, str(out)), nprocs=2, join=True)
    total = torch.load(out, weights_only=True)
    # Both GPUs count; rank 1's CPU *estimate* is dropped because rank 0's RAPL already measured the socket.
    assert total["joules"] == pytest.approx(10.0 + 5.0 + 7.0 + 1.0)
    assert total["components"] == {"cpu/measured:rapl": 10.0, "gpu/measured:nvml_counter": 12.0,
                                   "dram/estimated:ram_rss": 1.0}
    assert total["g_co2e"] == pytest.approx(2.3)
    assert total["seconds"] == 3.0  # the longest rank, not the sum
    assert "cpu_time_linear" not in total["method"]
