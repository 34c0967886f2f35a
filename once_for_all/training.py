"""One training loop for progressive shrinking, no-PS, the sandwich rule and static (from-scratch) models.

Per step: the phase's sampler (registry `SAMPLERS`) picks sub-nets, the batch is resized to each one's
resolution, each sub-net's loss = CE (+ label smoothing) + kd_weight x soft CE against a teacher is
back-propagated, and the summed gradients make ONE optimizer step (cosine lr per phase, per step).

Determinism: the data order of an epoch and the sub-nets of a step are pure functions of (seed, phase, epoch or
step); the torch RNG state is part of the epoch-end `state`, so resuming from it is bit-identical on CPU.

    >>> hist = train_phase(net, Phase("kernel", 2, 0.1, kernel_sizes="all"), Batches(x, y, 64), teacher=full)
"""

from __future__ import annotations

import copy
import hashlib
import math
import random
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from meter.registry import Registry

from .schedule import Phase
from .space import ArchSpace, SubnetConfig
from .supernet import resize_input
from .train_flops import TrainFlops


def derive_seed(*parts) -> int:
    """A 63-bit seed that is a pure function of `parts` (stable across processes, unlike hash())."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "little") >> 1


@dataclass
class Batches:
    """In-memory (x [N, ...], y [N]) split into shuffled batches of `batch_size`; the last partial batch is
    dropped so every step sees the same batch shape. Data parallel: `batch_size` is the global batch and rank
    `rank` of `world_size` gets its contiguous 1/world_size slice of each (the same order on every rank)."""

    x: torch.Tensor
    y: torch.Tensor
    batch_size: int
    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= len(self.x):
            raise ValueError(f"batch_size={self.batch_size}; allowed: 1..{len(self.x)} (the number of samples)")
        if self.batch_size % self.world_size or not 0 <= self.rank < self.world_size:
            raise ValueError(f"batch_size={self.batch_size} over {self.world_size} ranks (rank {self.rank}); "
                             f"allowed: a multiple of {self.world_size}")

    def __len__(self) -> int:
        return len(self.x) // self.batch_size

    def epoch(self, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(seed))
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            per = self.batch_size // self.world_size
            idx = idx[self.rank * per:(self.rank + 1) * per]  # [B / world]
            yield self.x[idx], self.y[idx]

    def epoch_of(self, seed: int, phase: str, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Epoch `epoch` of `phase`: shuffled by a seed derived from (seed, phase, epoch)."""
        return self.epoch(derive_seed(seed, phase, "data", epoch))


@dataclass
class SourceBatches:
    """Batches from any source with `steps_per_epoch` and `epoch(e, start=0)` yielding this rank's (x [b, ...], y [b])
    in an order the source fixes from its own (seed, e) (e.g. a streaming DataLoader wrapper; its data order is the
    source's, not `Batches`'). `world_size`: the ranks the source shards over (counters count every rank's work).
    Epoch `epoch` of a phase reads the source's epoch `first_epoch + epoch`; `train_schedule` sets `first_epoch` to
    the epochs of the phases before, so every epoch of a schedule draws a fresh order."""

    source: object
    world_size: int = 1
    first_epoch: int = 0

    def __len__(self) -> int:
        return self.source.steps_per_epoch

    def epoch_of(self, seed: int, phase: str, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.source.epoch(self.first_epoch + epoch)


# ------------------------------------------------------------------------------------------------ samplers
@dataclass(frozen=True)
class Sampler:
    """`sample(space, rng, n)` -> n sub-net configs (None = a static model); `inplace`: the first one is the
    teacher of the others in the same step (in-place distillation, BigNAS)."""

    sample: Callable[[ArchSpace | None, random.Random, int], list[SubnetConfig | None]]
    inplace: bool = False


def _uniform(space: ArchSpace, rng: random.Random, n: int) -> list[SubnetConfig]:
    # one resolution per step for all its sub-nets, as the reference data loader does
    res = rng.choice(space.resolutions)
    return [replace(space.sample(rng), resolution=res) for _ in range(n)]


def _sandwich(space: ArchSpace, rng: random.Random, n: int) -> list[SubnetConfig]:
    if n < 2:
        raise ValueError(f"sandwich sampler: subnets_per_step={n}; allowed: >= 2 (largest + smallest + random)")
    return [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(n - 2)]


SAMPLERS: Registry[Sampler] = Registry("ofa sampler")
SAMPLERS.register("progressive")(Sampler(_uniform))
SAMPLERS.register("no_ps")(Sampler(_uniform))  # same draw; what differs is the schedule (all open at once)
SAMPLERS.register("sandwich")(Sampler(_sandwich, inplace=True))
SAMPLERS.register("static")(Sampler(lambda space, rng, n: [None] * n))


# ------------------------------------------------------------------------------------------------ optimizers
@dataclass(frozen=True)
class OptimConfig:
    """SGD Nesterov 0.9, wd 3e-5 without decay on BN/bias (ndim <= 1), as OFA; or "adam"/"adamw"."""

    name: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 3e-5
    no_decay_bn_bias: bool = True
    betas: tuple[float, float] = (0.9, 0.999)


OPTIMIZERS: Registry = Registry("ofa optimizer")
OPTIMIZERS.register("sgd")(lambda groups, c: torch.optim.SGD(groups, lr=0.0, momentum=c.momentum,
                                                             nesterov=c.nesterov))
OPTIMIZERS.register("adam")(lambda groups, c: torch.optim.Adam(groups, lr=0.0, betas=c.betas))
OPTIMIZERS.register("adamw")(lambda groups, c: torch.optim.AdamW(groups, lr=0.0, betas=c.betas))


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.no_decay_bn_bias:
        groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    else:
        groups = [{"params": params, "weight_decay": cfg.weight_decay}]
    return OPTIMIZERS.get(cfg.name)(groups, cfg)


def cosine_lr(peak: float, step: int, total: int) -> float:
    return 0.5 * peak * (1.0 + math.cos(math.pi * step / max(total, 1)))


def phase_lr(peak: float, step: int, total: int, warmup: int = 0) -> float:
    """The reference's schedule: `warmup` steps linear to `peak` (step s: peak x (s+1)/warmup), then cosine from
    `peak` to 0 over the remaining total - warmup steps."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return cosine_lr(peak, step - warmup, total - warmup)


def warmup_steps(phase: Phase, steps_per_epoch: int) -> int:
    """The phase's warm-up in optimizer steps: round(warmup_epochs x steps per epoch), at most the phase."""
    return min(round(phase.warmup_epochs * steps_per_epoch), phase.epochs * steps_per_epoch)


# ------------------------------------------------------------------------------------------------ losses
def soft_cross_entropy(logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """mean_b sum_c -softmax(target)_bc log_softmax(logits)_bc; logits, target_logits: [B, C]."""
    return torch.sum(-F.softmax(target_logits, dim=1) * F.log_softmax(logits, dim=1), dim=1).mean()


# ------------------------------------------------------------------------------------------------ the loop
def _activate(model: nn.Module, cfg: SubnetConfig | None) -> None:
    if cfg is not None:
        model.set_active(cfg)


def _teacher_cfg(teacher: nn.Module, res: int) -> SubnetConfig | None:
    if not hasattr(teacher, "set_active"):
        return None
    return replace(ArchSpace.full(teacher.spec).largest(), resolution=res)


def _finite_on_every_rank(loss: float, world_size: int) -> bool:
    """`loss` is finite here and (under torch.distributed) on every other rank: one tiny MAX all-reduce."""
    bad = not math.isfinite(loss)
    if world_size > 1:
        flag = torch.tensor([int(bad)])
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        bad = bool(flag.item())
    return not bad


def _snapshot(model: nn.Module, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None, **rest) -> dict:
    """An epoch-end state that later training cannot mutate (tensors cloned); with fp16, the loss scale too."""
    return {"model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "optimizer": copy.deepcopy(opt.state_dict()), "rng": torch.get_rng_state(),
            "grad_scaler": None if scaler is None else scaler.state_dict(), **copy.deepcopy(rest)}


def train_phase(
    net: nn.Module, phase: Phase, batches: Batches | SourceBatches, *, seed: int = 0, teacher: nn.Module | None = None,
    kd_weight: float = 1.0, label_smoothing: float = 0.0, optim: OptimConfig = OptimConfig(),
    sampler: str | None = None, state: dict | None = None, on_epoch_end: Callable[[dict], None] | None = None,
    meter=None, flops: TrainFlops | None = None, grad_sync: Callable[[nn.Module], None] | None = None,
    device: torch.device | str | None = None, autocast: Callable[[], AbstractContextManager] | None = None,
    scaler: torch.amp.GradScaler | None = None, forward: nn.Module | None = None,
) -> dict:
    """Train `net` (an OFASupernet, or any static module with sampler "static") for one phase.

    `state`: what `on_epoch_end` received last (resume, the fp16 loss scale included); `meter`: each epoch runs in
    `meter.window`.
    Data parallel (the caller owns the process group): `batches` yields this rank's shard, every rank draws the
    same sub-nets (seeded by the step), and `grad_sync(net)` (e.g. an all-reduce mean of the grads) runs once per
    step on the sum of the sub-nets' gradients, before the optimizer step; FLOPs/samples count every rank.
    Device and precision (the caller's): batches are copied to `device` (non_blocking; `net` and `teacher` must be
    there already), forwards run under `autocast()` (e.g. bf16) with losses in fp32, `scaler` (fp16) scales the
    backward; `forward`: a compiled wrapper of a static `net` to train through (an elastic net recompiles per
    sub-net: compile only static ones).
    Returns {"phase", "epoch", "step", "counters", "history", "warmup_steps"}: counters hold optimizer steps,
    sub-net steps, samples and training FLOPs (sampled sub-nets fwd+bwd, teacher fwd); history one row per epoch.
    """
    draw = SAMPLERS.get(sampler or phase.sampler)
    space = phase.space(net.spec) if hasattr(net, "set_active") else None
    flops = flops if flops is not None else TrainFlops()
    teacher = teacher if phase.distill and kd_weight else None
    opt = build_optimizer(net, optim)
    total, warmup = phase.epochs * len(batches), warmup_steps(phase, len(batches))
    run = {"phase": phase.name, "epoch": 0, "step": 0, "history": [],
           "counters": {"optimizer_steps": 0, "subnet_steps": 0, "samples": 0, "flops_train": 0}}
    if state is not None:
        if state["phase"] != phase.name:
            raise ValueError(f"resume state is for phase {state['phase']!r}, not {phase.name!r}")
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        if scaler is not None and state.get("grad_scaler"):  # an fp16 run resumes at its loss scale
            scaler.load_state_dict(state["grad_scaler"])
        run = copy.deepcopy({k: state[k] for k in run})
    counters = run["counters"]
    net.train()
    for epoch in range(run["epoch"], phase.epochs):
        loss_sum = 0.0
        flops_before = counters["flops_train"]
        with meter.window(f"{phase.name}-epoch{epoch}") if meter is not None else nullcontext() as m:
            for x, y in batches.epoch_of(seed, phase.name, epoch):
                if device is not None:
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                step = run["step"]
                lr = phase_lr(phase.lr, step, total, warmup)
                for g in opt.param_groups:
                    g["lr"] = lr
                cfgs = draw.sample(space, random.Random(derive_seed(seed, phase.name, "arch", step)),
                                   phase.subnets_per_step)
                loss = _step(net, cfgs, x, y, opt, teacher, kd_weight, label_smoothing, draw.inplace, flops,
                             counters, grad_sync, batches.world_size, _Precision(autocast, scaler, forward))
                # stop before a diverged net is checkpointed as if healthy: every rank at once, none left waiting
                if not _finite_on_every_rank(loss, batches.world_size):
                    raise FloatingPointError(f"phase {phase.name!r} step {step}: loss {loss} (this rank) on sub-nets "
                                             f"{[str(c) for c in cfgs]}, not finite on at least one rank; lower the "
                                             f"lr ({lr:g}) or check the data")
                loss_sum += loss
                run["step"] = step + 1
        row = {"epoch": epoch, "loss": loss_sum / max(len(batches), 1), "lr": lr,
               "flops_train": counters["flops_train"] - flops_before}
        if m is not None:
            row["energy"] = m.to_dict()
        run["history"].append(row)
        run["epoch"] = epoch + 1
        if on_epoch_end is not None:
            on_epoch_end(_snapshot(net, opt, scaler, **run))
    return {**run, "warmup_steps": warmup}


@dataclass(frozen=True)
class _Precision:
    """How a step computes: autocast context factory, fp16 GradScaler, a compiled forward of a static net."""

    autocast: Callable[[], AbstractContextManager] | None = None
    scaler: torch.amp.GradScaler | None = None
    forward: nn.Module | None = None

    def context(self) -> AbstractContextManager:
        return self.autocast() if self.autocast is not None else nullcontext()


def _full(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """`fn` with a half-precision result cast to fp32 (losses and targets in fp32; fp32/fp64 untouched)."""
    def call(*args):
        out = fn(*args)
        return out.float() if out.dtype in (torch.float16, torch.bfloat16) else out
    return call


def _step(net, cfgs, x, y, opt, teacher, kd_weight, label_smoothing, inplace, flops, counters, grad_sync=None,
          world_size: int = 1, prec: _Precision = _Precision()) -> float:
    """Forward/backward every sampled sub-net, summing gradients (then `grad_sync` across ranks); one optimizer
    step. Returns this rank's mean loss; counters count all `world_size` ranks' work."""
    opt.zero_grad(set_to_none=True)
    resized: dict[int | None, torch.Tensor] = {}
    targets: dict[int | None, torch.Tensor] = {}
    inplace_target = None
    total = 0.0
    for j, cfg in enumerate(cfgs):
        res = cfg.resolution if cfg is not None else None
        if res not in resized:
            resized[res] = resize_input(x, res) if res is not None else x
        xr = resized[res]
        _activate(net, cfg)
        with prec.context():  # fp32: no-op; losses below in fp32 either way
            out = _full(net if prec.forward is None else prec.forward)(xr)
            loss = F.cross_entropy(out, y, label_smoothing=label_smoothing)
            target = inplace_target
            if teacher is not None:
                if res not in targets:
                    targets[res] = _full(_teacher_logits)(teacher, xr, res, flops, counters, world_size)
                target = targets[res]
            if target is not None and kd_weight:
                loss = loss + kd_weight * soft_cross_entropy(out, target)
        (prec.scaler.scale(loss) if prec.scaler is not None else loss).backward()
        if inplace and j == 0:
            inplace_target = out.detach()
        total += float(loss.detach())
        counters["flops_train"] += world_size * flops(net, cfg, xr)
    if grad_sync is not None:
        grad_sync(net)
    if prec.scaler is not None:  # fp16: unscale, skip a step with inf/nan gradients, adapt the scale
        prec.scaler.step(opt)
        prec.scaler.update()
    else:
        opt.step()
    counters["optimizer_steps"] += 1
    counters["subnet_steps"] += len(cfgs)
    counters["samples"] += world_size * len(x) * len(cfgs)
    return total / len(cfgs)


def _teacher_logits(teacher: nn.Module, x: torch.Tensor, res: int | None, flops: TrainFlops,
                    counters: dict, world_size: int = 1) -> torch.Tensor:
    # teacher in train() mode under no_grad, as the reference code distils
    teacher.train()
    tcfg = _teacher_cfg(teacher, res) if res is not None else None
    _activate(teacher, tcfg)
    with torch.no_grad():
        out = teacher(x)
    counters["flops_train"] += world_size * flops(teacher, tcfg, x, backward=False)
    return out


def train_static(model: nn.Module, batches: Batches | SourceBatches, *, epochs: int, lr: float, name: str = "static",
                 warmup_epochs: float = 0.0, **kwargs) -> dict:
    """Train any static module (from-scratch baseline) through the same loop; kwargs as `train_phase`."""
    phase = Phase(name, epochs, lr, sampler="static", distill=False, warmup_epochs=warmup_epochs)
    return train_phase(model, phase, batches, **kwargs)


def teacher_index(phases, teacher_after: int | str | None, kd_weight: float) -> int | None:
    """The index of the phase after which a frozen copy of the net becomes the KD teacher of the later phases
    (`teacher_after`: an index, 0 or "first" = the first phase, OFA's full net; a phase name; or None: no teacher).

    ValueError naming the value and what is allowed when the name is not a phase, or when kd_weight > 0 while a
    phase asks for KD (distill=True, not in-place) and no teacher exists: KD would be silently off."""
    names = [p.name for p in phases]
    if teacher_after == "first" and "first" not in names:
        teacher_after = 0
    if isinstance(teacher_after, str):
        if teacher_after not in names:
            raise ValueError(f"teacher={teacher_after!r} is not a phase of the schedule; allowed: {names}, 'first' "
                             "or null (no teacher)")
        teacher_after = names.index(teacher_after)
    if teacher_after is not None and not 0 <= teacher_after < len(phases):
        raise ValueError(f"teacher index {teacher_after}; allowed: 0..{len(phases) - 1}")
    wants = [p.name for p in phases if p.distill and not SAMPLERS.get(p.sampler).inplace]
    if kd_weight > 0 and teacher_after is None and wants:
        raise ValueError(f"kd_weight={kd_weight} but no teacher: phases {wants} would distil from nothing; allowed: "
                         "kd_weight=0, or a teacher (the first phase or a phase name)")
    return teacher_after


def train_schedule(net: nn.Module, phases, batches: Batches | SourceBatches, *, teacher_after: int | str | None = 0,
                   state: dict | None = None, on_epoch_end: Callable[[dict], None] | None = None,
                   **kwargs) -> list[dict]:
    """Run `phases` in order: re-order channels before a phase that asks for it, and after the teacher phase
    (`teacher_index`: the first phase by default, whatever its name) freeze a copy of the net as the KD teacher
    of the later phases. A re-ordering keeps the channel groups of the expand ratios the previous phase trained
    below its largest (the reference protects expand_1's e=4 group before expand_2). The epoch-end states add
    "phase_index", "teacher" (its weights) and "results" (earlier phases' returns), so `state` resumes
    anywhere in the schedule. kwargs as `train_phase`. Returns one result per phase."""
    from .reorder import reorder_channels

    teacher_at = teacher_index(phases, teacher_after, kwargs.get("kd_weight", 1.0))
    start = state["phase_index"] if state is not None else 0
    results = copy.deepcopy(state["results"]) if state is not None else []
    teacher = None
    if state is not None and state["teacher"] is not None:
        teacher = copy.deepcopy(net).requires_grad_(False)
        teacher.load_state_dict(state["teacher"])
    for i in range(start, len(phases)):
        phase = phases[i]
        resume = state if i == start else None
        if phase.reorder_before and resume is None:
            before = phases[i - 1].values(net.spec, "expand_ratios") if i > 0 else ()
            reorder_channels(net, keep=tuple(before[:-1]))  # the previous phase's narrower groups stay sets

        def hook(s: dict, i: int = i, t: nn.Module | None = teacher) -> None:
            s.update(phase_index=i, results=copy.deepcopy(results),
                     teacher=None if t is None else {k: v.clone() for k, v in t.state_dict().items()})
            if on_epoch_end is not None:
                on_epoch_end(s)

        phase_batches = batches
        if isinstance(batches, SourceBatches):  # the source's epochs run on across phases
            phase_batches = replace(batches, first_epoch=batches.first_epoch + sum(p.epochs for p in phases[:i]))
        results.append(train_phase(net, phase, phase_batches, teacher=teacher, state=resume, on_epoch_end=hook,
                                   **kwargs))
        if i == teacher_at:
            teacher = copy.deepcopy(net).requires_grad_(False)
    return results
