"""Where and how a run computes: device, precision, compilation, memory format (top-level config keys).

`Runtime.from_config(cfg)` resolves `device=auto|cpu|cuda|cuda:N|mps` on *this* machine and refuses a GPU-only
option where there is no GPU (a ConfigError: exit 2, naming the key and what the machine has). The defaults
(cpu, fp32, eager, contiguous) change nothing: every helper is then the identity, so records stay bit-identical.

    rt = Runtime(device=torch.device("cpu"), precision="bf16")
    model, compiled = rt.prepare_model(model)       # on the device; compiled only when asked
    with rt.autocast():                             # bf16/fp16 autocast; a no-op in fp32
        loss = loss_fn(model(rt.to_device(x)).float(), rt.to_device(y))

Research packages never import this module: their loops take `device` and `autocast` (a context factory) as
arguments, which a task passes from its Runtime.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from experiments.schema import ConfigError, check

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
DEVICE_HELP = "auto, cpu, cuda, cuda:N, mps"


def check_keys(device: str, precision: str, compile_mode: str) -> None:
    """The machine-independent checks of the config keys (compose time); `resolve_device` checks the machine."""
    kind = device.split(":")[0]
    check(kind in ("auto", "cpu", "cuda", "mps") and (device.count(":") == 0 or (
        kind == "cuda" and device.split(":")[1].isdigit())), "device", device, DEVICE_HELP)
    check(precision in PRECISIONS, "precision", precision, ", ".join(PRECISIONS))
    check(compile_mode in COMPILE_MODES, "compile_mode", compile_mode, ", ".join(COMPILE_MODES))


def machine() -> str:
    """What accelerators this machine has, in words (for error messages)."""
    if torch.cuda.is_available():
        names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        return f"{torch.cuda.device_count()} CUDA device(s): {', '.join(names)}"
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    return "no CUDA device, an MPS device" if has_mps else "no CUDA or MPS device (CPU only)"


def _local_rank() -> int | None:
    """The local rank under torchrun or SLURM (None when not launched as several processes)."""
    for key in ("LOCAL_RANK", "SLURM_LOCALID"):
        if key in os.environ and int(os.environ.get("WORLD_SIZE", os.environ.get("SLURM_NTASKS", "1"))) > 1:
            return int(os.environ[key])
    return None


def resolve_device(spec: str) -> torch.device:
    """`auto`: the local rank's GPU under a launcher, else cuda:0, else mps, else cpu. A device this machine lacks
    is a ConfigError naming the key and what the machine has."""
    check_keys(spec, "fp32", "default")
    kind = spec.split(":")[0]
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if kind == "auto":
        if torch.cuda.is_available():
            kind = "cuda"
        else:
            return torch.device("mps" if has_mps else "cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        check(has_mps, "device", spec, f"a device this machine has ({machine()})")
        return torch.device("mps")
    check(torch.cuda.is_available(), "device", spec, f"auto, cpu (this machine has {machine()})")
    count = torch.cuda.device_count()
    index = int(spec.split(":")[1]) if ":" in spec else (_local_rank() or 0)
    check(index < count, "device", spec, f"cuda:0..cuda:{count - 1} (this machine has {machine()})")
    return torch.device("cuda", index)


@dataclass
class Runtime:
    """How a run computes. Construct directly in a library script, or with `from_config` in a job (checked)."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 adds a GradScaler)
    compile: bool = False  # torch.compile the model (what a family compiles is its own choice: see prepare_model)
    compile_mode: str = "default"
    channels_last: bool = False  # 4-D conv nets and their image batches in NHWC
    pin_memory: bool = False  # host batches are pinned before the copy (streaming sources on a GPU)
    compiles: str = "model"  # what compile=true compiles in a row that does not say (OFA: "none"; its units say)

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)
        check_keys("cpu", self.precision, self.compile_mode)

    @classmethod
    def from_config(cls, cfg: Any) -> Runtime:
        """The runtime of a validated root config (`device`, `precision`, `compile`, `compile_mode`,
        `channels_last`); raises ConfigError for an option this machine cannot run."""
        device = resolve_device(cfg.device)
        precision = cfg.precision
        if precision == "fp16":
            check(device.type == "cuda", "precision", precision,
                  f"fp32, bf16 on device {device} (fp16 needs a CUDA GPU with a GradScaler; this machine has "
                  f"{machine()})")
        if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"precision='bf16' is invalid; allowed: fp32, fp16 ({torch.cuda.get_device_name(device)}"
                              " has no bf16 support)")
        if device.type == "cuda":
            torch.cuda.set_device(device)  # NCCL collectives and bare .cuda() calls use this rank's GPU
        return cls(device=device, precision=precision, compile=cfg.compile, compile_mode=cfg.compile_mode,
                   channels_last=cfg.channels_last, pin_memory=device.type == "cuda")

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype; None in fp32."""
        return PRECISIONS[self.precision]

    def autocast(self) -> contextlib.AbstractContextManager:
        """A fresh autocast context for the forward pass and loss (a no-op in fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """fp16 only (bf16 has fp32's range); its `state_dict()` belongs in every checkpoint."""
        return torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

    def to_device(self, batch):
        """A tensor, or a tuple/list/dict of them, on the device (non_blocking; pinned first when `pin_memory`);
        4-D float batches in channels_last when asked. On CPU with contiguous format: returned as it is."""
        if isinstance(batch, torch.Tensor):
            if self.pin_memory and batch.device.type == "cpu" and self.device.type == "cuda":
                batch = batch.pin_memory()
            batch = batch.to(self.device, non_blocking=True)
            if self.channels_last and batch.dim() == 4 and batch.is_floating_point():
                batch = batch.contiguous(memory_format=torch.channels_last)
            return batch
        if isinstance(batch, (tuple, list)):
            return type(batch)(self.to_device(b) for b in batch)
        if isinstance(batch, dict):
            return {k: self.to_device(v) for k, v in batch.items()}
        return batch

    def prepare_model(self, model: nn.Module, compile_it: bool | None = None) -> tuple[nn.Module, str]:
        """Move `model` to the device (in place), channels_last if it has 4-D conv weights and that was asked,
        and wrap it in torch.compile when `compile` (or `compile_it`) says so. Returns (the module to call,
        what was compiled: "none" or the model's class name)."""
        model.to(self.device)
        if self.channels_last and any(isinstance(m, nn.Conv2d) for m in model.modules()):
            model.to(memory_format=torch.channels_last)
        if not (self.compile if compile_it is None else compile_it):
            return model, "none"
        return torch.compile(model, mode=None if self.compile_mode == "default" else self.compile_mode), \
            type(model).__name__

    def sync(self) -> None:
        """Wait for queued device work (timing and energy windows)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def row(self, compiled: str | None = None) -> dict:
        """The runtime/* keys a row carries (`compiled`: what the unit compiled, when it differs from the model)."""
        gpu = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None
        return {"runtime/device": str(self.device), "runtime/gpu_name": gpu, "runtime/precision": self.precision,
                "runtime/compile": compiled if compiled is not None else (self.compiles if self.compile else "none")}


CPU = Runtime()  # the default: what every run did before runtimes existed
