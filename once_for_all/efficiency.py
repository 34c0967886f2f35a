"""Latency and energy of sub-nets on this machine: measured latency, a per-block latency table, energy per inference.

Latency is the median of `repeats` timed calls after `warmup` untimed ones, under torch.inference_mode, with the
thread count recorded (it changes CPU latency several-fold). The table sums per-block latencies timed in
isolation at each block's input shape, plus the fixed layers (stem, head); `table_error` says how far that sum
is from the measured whole sub-net. Energy comes from `meter.Meter` windows and keeps the meter's label: a
figure is called measured only where a measured source covered it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from .space import ArchSpace, SubnetConfig

# How a latency is timed. "thread_cpu" (CPU time of the calling thread) excludes waits for a busy CPU; it is the
# latency itself only with one intra-op thread (other threads' CPU time is not counted).
TIMERS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "thread_cpu": time.thread_time}


def _sync(x: torch.Tensor) -> None:
    if x.is_cuda:
        torch.cuda.synchronize(x.device)


@torch.inference_mode()
def _timings(fn: Callable[[], object], x: torch.Tensor, warmup: int, repeats: int,
             timer: Callable[[], float]) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(x)
    out = []
    for _ in range(repeats):
        t0 = timer()
        fn()
        _sync(x)
        out.append(timer() - t0)
    return out


def measure_latency(module: nn.Module, x: torch.Tensor, warmup: int = 10, repeats: int = 50,
                    timer: Callable[[], float] = time.perf_counter) -> float:
    """Median seconds of `module(x)` in eval mode (the module's mode is restored)."""
    if warmup < 0 or repeats < 1:
        raise ValueError(f"measure_latency: warmup={warmup}, repeats={repeats}; allowed: warmup >= 0, repeats >= 1")
    was_training = module.training
    module.eval()
    try:
        return statistics.median(_timings(lambda: module(x), x, warmup, repeats, timer))
    finally:
        module.train(was_training)


def latency_report(module: nn.Module, sample: torch.Tensor, batch_sizes: Iterable[int] = (1, 32),
                   warmup: int = 10, repeats: int = 50) -> dict[str, float | int]:
    """{"latency/b{N}_s": median seconds per batch of N, ..., "latency/num_threads": threads} for one sample
    [1, ...] repeated to each batch size."""
    row: dict[str, float | int] = {"latency/num_threads": torch.get_num_threads()}
    for n in batch_sizes:
        x = sample.expand(n, *sample.shape[1:]).contiguous()
        row[f"latency/b{n}_s"] = measure_latency(module, x, warmup, repeats)
    return row


# ------------------------------------------------------------------------------------------------ the table
@dataclass
class LatencyTable:
    """blocks[(stage, index, kernel, expand, resolution)] and fixed[resolution]: median seconds at `batch_size`.

    predict(cfg) = fixed[cfg.resolution] + the entries of the blocks cfg runs (the first depth[s] of stage s).
    """

    blocks: dict[tuple, float]
    fixed: dict[int, float]
    max_depth: int
    batch_size: int = 1
    num_threads: int = field(default_factory=torch.get_num_threads)
    timer: str = "wall"  # a TIMERS name: what the entries were timed with

    def block_keys(self, cfg: SubnetConfig) -> list[tuple]:
        keys = []
        for s, depth in enumerate(cfg.depths):
            for i in range(depth):
                b = s * self.max_depth + i
                keys.append((s, i, cfg.kernels[b], cfg.expands[b], cfg.resolution))
        return keys

    def predict(self, cfg: SubnetConfig) -> float:
        missing = [k for k in self.block_keys(cfg) if k not in self.blocks]
        if cfg.resolution not in self.fixed or missing:
            raise KeyError(f"LatencyTable has no entry for {missing[:3] or ('fixed', cfg.resolution)} of {cfg}")
        return self.fixed[cfg.resolution] + sum(self.blocks[k] for k in self.block_keys(cfg))

    def to_dict(self) -> dict:
        """JSON-serialisable; `from_dict` inverts it exactly."""
        return {"blocks": [[*k, v] for k, v in self.blocks.items()], "fixed": [[r, v] for r, v in self.fixed.items()],
                "max_depth": self.max_depth, "batch_size": self.batch_size, "num_threads": self.num_threads,
                "timer": self.timer}

    @classmethod
    def from_dict(cls, d: dict) -> LatencyTable:
        blocks = {(int(s), int(i), int(k), e, int(r)): float(v) for s, i, k, e, r, v in d["blocks"]}
        return cls(blocks, {int(r): float(v) for r, v in d["fixed"]}, int(d["max_depth"]), int(d["batch_size"]),
                   int(d["num_threads"]), d.get("timer", "wall"))

    @classmethod
    def build(cls, net: nn.Module, batch_size: int = 1, warmup: int = 5, repeats: int = 20,
              device: str | torch.device = "cpu", timer: str = "wall") -> LatencyTable:
        """Time every (stage, block, kernel, expand, resolution) choice of `net` (an OFASupernet) in isolation.

        For each (kernel, expand, resolution) one static sub-net with every block at that choice and full depth
        is exported; each block is timed on the input it receives there, the rest of the net as `fixed`.
        On a busy machine a whole-net wall time includes waits for the CPU that sub-millisecond block timings
        escape; `timer="thread_cpu"` (CPU time of this thread; 1 intra-op thread) compares like with like.
        """
        from .export import export_subnet

        if timer not in TIMERS or (timer == "thread_cpu" and torch.device(device).type != "cpu"):
            raise ValueError(f"LatencyTable.build: timer={timer!r} on {device}; allowed: {', '.join(TIMERS)} "
                             "(thread_cpu on the CPU only: it does not see an accelerator's time)")
        clock = TIMERS[timer]
        spec, space = net.spec, ArchSpace.full(net.spec)
        nblk, depth = spec.num_blocks, max(spec.depths)
        blocks: dict[tuple, float] = {}
        fixed: dict[int, float] = {}
        for res in spec.resolutions:
            for k in spec.kernel_sizes:
                for e in spec.expand_ratios:
                    cfg = SubnetConfig((k,) * nblk, (e,) * nblk, (depth,) * len(spec.stage_widths), res)
                    space.validate(cfg)
                    model = export_subnet(net, cfg).to(device).eval()
                    x = torch.randn(batch_size, spec.in_channels, *(res,) * spec.dims, device=device)
                    parts = _block_inputs(model, x)
                    for b, (blk, inp) in enumerate(parts):
                        blocks[(b // depth, b % depth, k, e, res)] = statistics.median(
                            _timings(lambda blk=blk, inp=inp: blk(inp), inp, warmup, repeats, clock))
                    if res not in fixed:
                        fixed[res] = _fixed_latency(model, x, parts, warmup, repeats, clock)
        return cls(blocks, fixed, depth, batch_size, timer=timer)


def _block_inputs(model: nn.Module, x: torch.Tensor) -> list[tuple[nn.Module, torch.Tensor]]:
    """[(block module, the input it receives in model(x))] in forward order (`model.blocks`)."""
    seen: list[tuple[nn.Module, torch.Tensor]] = []
    handles = [blk.register_forward_pre_hook(lambda m, args: seen.append((m, args[0].detach().clone())))
               for blk in model.blocks]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


class _Replay(nn.Module):
    """Stands in for the blocks: returns the output they produced, so only the fixed layers run."""

    def __init__(self, out: torch.Tensor) -> None:
        super().__init__()
        self.out = out

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out


def _fixed_latency(model: nn.Module, x: torch.Tensor, parts, warmup: int, repeats: int, timer) -> float:
    """Latency of everything but the blocks (stem, head, pooling, classifier): the blocks replaced by a replay
    of their output."""
    with torch.inference_mode():
        out = model.blocks(parts[0][1]) if parts else None
    saved = model.blocks
    model.blocks = nn.Sequential(_Replay(out)) if out is not None else nn.Sequential()
    try:
        return statistics.median(_timings(lambda: model(x), x, warmup, repeats, timer))
    finally:
        model.blocks = saved


def table_error(table: LatencyTable, net: nn.Module, cfgs: Iterable[SubnetConfig], warmup: int = 5,
                repeats: int = 20, device: str | torch.device = "cpu") -> list[dict]:
    """Per sub-net: predicted and measured latency (exported static model, table's batch size and timer, on
    `device`) and their relative error (predicted - measured) / measured. Use the device the table was built on."""
    from .export import export_subnet

    spec, rows = net.spec, []
    for cfg in cfgs:
        model = export_subnet(net, cfg).to(device).eval()
        x = torch.randn(table.batch_size, spec.in_channels, *(cfg.resolution,) * spec.dims, device=device)
        measured = measure_latency(model, x, warmup, repeats, TIMERS[table.timer])
        pred = table.predict(cfg)
        rows.append({"config": str(cfg), "latency/predicted_s": pred, "latency/measured_s": measured,
                     "latency/rel_error": (pred - measured) / measured})
    return rows


# ------------------------------------------------------------------------------------------------ energy
def energy_per_inference(module: nn.Module, x: torch.Tensor, meter, repeats: int = 100, warmup: int = 5,
                         name: str = "inference") -> dict[str, float | str]:
    """Energy of one call `module(x)` (x: one batch) from a `meter.window` around `repeats` calls.

    "energy/method" is the meter's label for the window: "measured:*" only where a measured source covered
    every component, otherwise it lists the `estimated:*` model(s); "energy/estimated" says which it is.
    """
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                module(x)
            _sync(x)
            with meter.window(name) as m:
                for _ in range(repeats):
                    module(x)
                _sync(x)
    finally:
        module.train(was_training)
    estimated = "estimated:" in m.method or not m.method.startswith("measured:")
    return {"energy/joules_per_inference": m.joules / repeats,
            "energy/joules_per_sample": m.joules / (repeats * len(x)),
            "energy/method": m.method, "energy/estimated": estimated,
            "energy/window_s": m.seconds, "energy/short_window": m.short_window}
