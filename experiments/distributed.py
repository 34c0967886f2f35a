"""torch.distributed under the runner: `torchrun --nproc_per_node=N -m experiments.run hydra.run.dir=DIR ...`, or one
process per SLURM task (`srun`, `launcher=submitit_slurm`): the group is formed from SLURM's environment, no torchrun.

Every rank computes the same things (same data order, same masks); each rank takes a 1/world slice of every
global batch and DDP averages the gradients, so a run equals single-process training at the same global batch
(within float tolerance). Only rank 0 writes files. Energy is measured by each rank for its own device and summed
once across ranks per window (`sum_measurement`), never N-times counted.
"""

from __future__ import annotations

import os
import random
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace

import torch
import torch.distributed as dist
from torch import nn

from meter import Measurement


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return world()[0] == 0


@dataclass
class DDPCfg:
    """`ddp.*`: data-parallel options (the global batch `optim.batch_size` is split evenly over the ranks)."""

    sync_bn: bool = False  # BatchNorm statistics over the global batch (every rank's shard), as one process has


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def launched_by_slurm(env=os.environ) -> bool:
    """Several tasks of one `srun` step (submitit's too) and no torchrun variables: one process per task."""
    return int(env.get("SLURM_STEP_NUM_TASKS", "1")) > 1 and "SLURM_PROCID" in env and "WORLD_SIZE" not in env


def slurm_env() -> dict[str, str]:
    """torch.distributed's env:// variables from SLURM's (submitit's TorchDistributedEnvironment mapping, without
    its requirement of a submitit job): rank SLURM_PROCID, local rank SLURM_LOCALID, world SLURM_NTASKS, master the
    first host of SLURM_JOB_NODELIST, port MASTER_PORT or one drawn from the job id (the same on every task)."""
    from submitit.slurm.slurm import SlurmJobEnvironment

    job = SlurmJobEnvironment()
    port = os.environ.get("MASTER_PORT") or str(random.Random(job.job_id).randint(20000, 60000))
    return {"MASTER_ADDR": job.hostnames[0], "MASTER_PORT": port, "RANK": str(job.global_rank),
            "WORLD_SIZE": str(job.num_tasks), "LOCAL_RANK": str(job.local_rank),
            "LOCAL_WORLD_SIZE": str(job.num_tasks // job.num_nodes)}


@contextmanager
def process_group():
    """Initialise the default group from torchrun's or SLURM's environment (gloo for CPU tensors, nccl for CUDA
    ones); no-op in a single process. SLURM's variables are exported as torchrun's (LOCAL_RANK picks the GPU and
    the host's one RAPL reader)."""
    if launched_by_slurm() and not dist.is_initialized():
        os.environ.update(slurm_env())
    if not launched_by_torchrun() or dist.is_initialized():
        yield
        return
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available() and local < torch.cuda.device_count():  # more ranks than GPUs: the runtime's
        torch.cuda.set_device(local)  # config error; before any collective (NCCL stages objects on this GPU)
    dist.init_process_group(backend=backend)
    try:
        yield
        dist.barrier()  # rank 0 may still be writing records; tearing gloo down under a busy peer can abort it
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def agree_max(value: int) -> int:
    """The largest of every rank's `value` (e.g. a preemption signal number, 0 for none); one small all-reduce."""
    if world()[1] == 1:
        return value
    t = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def broadcast_object(obj):
    """Rank 0's `obj` on every rank."""
    if world()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_measurement(m: Measurement) -> Measurement:
    """One window's energy and carbon summed over ranks (each metered its own GPU and its own process); the wall
    time is the longest rank's. A component one rank *measured* (RAPL: the whole socket, read by local rank 0)
    replaces the other ranks' *estimates* of that component, which it already contains."""
    if world()[1] == 1:
        return m
    parts: list = [None] * world()[1]
    dist.all_gather_object(parts, m.to_dict())
    ms = [Measurement.from_dict(p) for p in parts]
    measured_kinds = {k.split("/")[0] for x in ms for k in x.components if "/measured:" in k}
    kept = []
    for x in ms:
        drop = [k for k in x.components if "/estimated:" in k and k.split("/")[0] in measured_kinds]
        if drop:
            dropped = sum(x.components[k] for k in drop)
            share = dropped / x.joules if x.joules else 0.0
            comps = {k: v for k, v in x.components.items() if k not in drop}
            x = replace(x, joules=x.joules - dropped, g_co2e=x.g_co2e * (1 - share), components=comps,
                        method="+".join(dict.fromkeys(k.split("/", 1)[1] for k in comps)))
        kept.append(x)
    total = kept[0]
    for x in kept[1:]:
        total = total + x
    return replace(total, seconds=max(x.seconds for x in ms))


class RankSummedMeter:
    """A meter for a research package's own loop (OFA's train_phase) under torch.distributed: its `window` yields
    the inner meter's Measurement and, when the window closes, overwrites it with the sum over ranks
    (`sum_measurement`), so the epoch energy the loop records and checkpoints counts every rank once."""

    def __init__(self, meter) -> None:
        self.meter = meter

    @contextmanager
    def window(self, name: str, **kwargs):
        with self.meter.window(name, **kwargs) as m:
            yield m
        total = sum_measurement(m)
        for f in fields(m):
            setattr(m, f.name, getattr(total, f.name))


def summed_meter(meter):
    """`meter` itself in one process, else a `RankSummedMeter` around it."""
    return meter if world()[1] == 1 or meter is None else RankSummedMeter(meter)


def shard(indices: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous slice of a global batch; the global batch must divide evenly."""
    rank, size = world()
    if size == 1:
        return indices
    if len(indices) % size:
        raise ValueError(f"optim.batch_size={len(indices)} does not divide over {size} ranks")
    per = len(indices) // size
    return indices[rank * per : (rank + 1) * per]


def split_batch(global_batch: int, key: str = "optim.batch_size") -> int:
    """Each rank's share of a global batch; an indivisible one is a ValueError naming `key` (a config error)."""
    size = world()[1]
    if global_batch % size:
        raise ValueError(f"{key}={global_batch} does not divide over {size} ranks; allowed: a multiple of {size}")
    return global_batch // size


def check_global_batch(cfg) -> None:
    """A ConfigError when the run's global batch `optim.batch_size` does not divide over the ranks."""
    from experiments.schema import ConfigError

    batch = getattr(getattr(cfg, "optim", None), "batch_size", None)
    if batch is not None:
        try:
            split_batch(batch)
        except ValueError as e:
            raise ConfigError(str(e)) from None


def average_gradients(module: nn.Module) -> None:
    """The gradient-sync hook of the research loops (OFA, adaptive frames): every `.grad` := its mean over ranks,
    one all-reduce per (device, dtype). Parameters without a grad (an elastic supernet's inactive channels, an
    unused expert) are skipped; every rank must have the same set (same sub-nets, same routing of shapes)."""
    _average(module.parameters())


def broadcast_buffers(module: nn.Module) -> None:
    """Every buffer of `module` (BatchNorm running statistics, counters) := rank 0's, one broadcast per (device,
    dtype). DDP does this before each forward (broadcast_buffers); the research loops do it after each step, so
    every rank holds rank 0's state, and a checkpoint (rank 0's) resumes every rank where it was."""
    if world()[1] > 1:
        _flat_collective(module.buffers(), lambda flat: dist.broadcast(flat, src=0))


def sync_step(module: nn.Module) -> None:
    """The research loops' per-step data-parallel sync (OFA's `grad_sync`): gradients averaged over the ranks,
    buffers taken from rank 0."""
    average_gradients(module)
    broadcast_buffers(module)


def average_optimizer_gradients(optimizer: torch.optim.Optimizer) -> None:
    """`average_gradients` over the parameters an optimizer steps (adaptive_frames' `Compute.grad_sync`)."""
    _average(p for g in optimizer.param_groups for p in g["params"])


def _average(params) -> None:
    size = world()[1]
    if size > 1:
        _flat_collective((p.grad for p in params if p.grad is not None),
                         lambda flat: (dist.all_reduce(flat), flat.div_(size)))


def _flat_collective(tensors, collective) -> None:
    """`collective(flat)` on one flat copy per (device, dtype) of `tensors`, written back in place."""
    groups: dict[tuple, list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    for group in groups.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        collective(flat)
        offset = 0
        for t in group:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


class _SyncBN:
    """BatchNorm whose training-mode statistics are those of the global batch: sums over every rank's shard (two
    differentiable all-reduces: mean, then biased variance), so a 2-rank step equals a 1-process step of the same
    global batch. Works on any device and on elastic BNs (the first x.shape[1] channels); same state_dict keys.
    A KD teacher's train-mode forward is synchronised too; the cumulative-average mode (momentum None), which BN
    recalibration uses on the same batches on every rank, stays per rank."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.momentum is not None and world()[1] > 1):
            return super().forward(x)
        from sparse_moe.losses import (
            all_reduce_sum as all_reduce,  # differentiable; torch's own is deprecated
        )

        n, dims = x.shape[1], [0, *range(2, x.dim())]
        shape = [1, n] + [1] * (x.dim() - 2)
        count = all_reduce(x.new_tensor([x.numel() / n]))
        mean = all_reduce(x.sum(dims)) / count
        var = all_reduce(((x - mean.view(shape)) ** 2).sum(dims)) / count  # biased, as BN normalises with
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            m = self.momentum
            with torch.no_grad():
                self.running_mean[:n].mul_(1 - m).add_(m * mean.detach())
                self.running_var[:n].mul_(1 - m).add_(m * var.detach() * count / (count - 1))
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return y * self.weight[:n].view(shape) + self.bias[:n].view(shape) if self.affine else y


_SYNC_CLASSES: dict[type, type] = {}


def convert_sync_bn(module: nn.Module) -> nn.Module:
    """`ddp.sync_bn=true`: every BatchNorm of `module` becomes a synchronised one, in place (its class gains
    `_SyncBN`; parameters, buffers and checkpoints unchanged). Returns `module`."""
    from torch.nn.modules.batchnorm import _BatchNorm

    for m in module.modules():
        if isinstance(m, _BatchNorm) and not isinstance(m, _SyncBN):
            cls = type(m)
            m.__class__ = _SYNC_CLASSES.setdefault(cls, type(f"Sync{cls.__name__}", (_SyncBN, cls), {}))
    return module
