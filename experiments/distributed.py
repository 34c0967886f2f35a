"""torch.distributed under the runner: `torchrun --nproc_per_node=N -m experiments.run hydra.run.dir=DIR ...`.

Every rank computes the same things (same data order, same masks); each rank takes a 1/world slice of every
global batch and DDP averages the gradients, so a run equals single-process training at the same global batch
(within float tolerance). Only rank 0 writes files. Energy is measured by each rank for its own device and summed
once across ranks per window (`sum_measurement`), never N-times counted.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import replace

import torch
import torch.distributed as dist

from meter import Measurement


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
        dist.barrier()  # rank 0 may still be writing records; tearing gloo down under a busy peer can abort it
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


def shard(indices: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous slice of a global batch; the global batch must divide evenly."""
    rank, size = world()
    if size == 1:
        return indices
    if len(indices) % size:
        raise ValueError(f"optim.batch_size={len(indices)} does not divide over {size} ranks")
    per = len(indices) // size
    return indices[rank * per : (rank + 1) * per]
