"""torch.distributed under the runner: `torchrun --nproc_per_node=N -m experiments.run hydra.run.dir=DIR ...`.

Every rank computes the same things (same data order, same masks); each rank takes a 1/world slice of every
global batch and DDP averages the gradients, so a run equals single-process training at the same global batch
(within float tolerance). Only rank 0 writes files. Energy is measured by each rank for its own device and summed
once across ranks (see `sum_across_ranks`), never N-times counted.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return world()[0] == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextmanager
def process_group():
    """Initialise the default group from torchrun's environment (gloo on CPU, nccl on GPU); no-op otherwise."""
    if not launched_by_torchrun() or dist.is_initialized():
        yield
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def broadcast_object(obj):
    """Rank 0's `obj` on every rank."""
    if world()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_across_ranks(value: float) -> float:
    if world()[1] == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t)


def shard(indices: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous slice of a global batch; the global batch must divide evenly."""
    rank, size = world()
    if size == 1:
        return indices
    if len(indices) % size:
        raise ValueError(f"optim.batch_size={len(indices)} does not divide over {size} ranks")
    per = len(indices) // size
    return indices[rank * per : (rank + 1) * per]
