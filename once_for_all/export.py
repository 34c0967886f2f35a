"""Export a sub-network of the supernet as a plain static module with its own weights, and save/load it.

The exported `StaticSubnet` holds only the blocks the config runs, each an `MBBlock` of exactly the active
shape: expand/depthwise/SE/BN tensors are copies of the first `mid` channels, depthwise kernels are the
transformed k x k kernels (transform matrices folded in). Its output equals the supernet's at that config.
Files: safetensors with metadata {"config": str(cfg), "spec": JSON of the SupernetSpec}.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .layers import MBBlock
from .space import SubnetConfig, SupernetSpec
from .supernet import OFANet, OFASupernet, block_geometry


class StaticSubnet(OFANet):
    """The sub-net `cfg` of `spec` as a static network: stem, [first block], its blocks, head, classifier."""

    def __init__(self, spec: SupernetSpec, cfg: SubnetConfig) -> None:
        super().__init__(spec)
        self.config = cfg.canonical(spec)
        blocks = []
        for s, i, b in cfg.active_blocks(spec):
            g = block_geometry(spec, s, i)
            mid = spec.mid_channels(g["cin"], cfg.expands[b])
            blocks.append(MBBlock(spec.dims, g["cin"], mid, g["cout"], cfg.kernels[b], g["stride"],
                                  spec.se_channels(mid) if g["se"] else 0, g["act"]))
        self.blocks = nn.Sequential(*blocks)

    def running_blocks(self) -> nn.Sequential:
        return self.blocks


def subnet_state(net: OFASupernet, cfg: SubnetConfig) -> dict[str, Tensor]:
    """StaticSubnet state dict of `cfg`, as differentiable functions of the supernet's tensors (not copies)."""
    previous = net.active
    net.set_active(cfg)
    try:
        state = {k: v for k, v in net.state_dict(keep_vars=True).items() if not k.startswith("blocks.")}
        for j, (_, _, b) in enumerate(cfg.active_blocks(net.spec)):
            state.update({f"blocks.{j}.{k}": v for k, v in net.blocks[b].static_state().items()})
    finally:
        net.set_active(previous)
    return state


def export_subnet(net: OFASupernet, cfg: SubnetConfig) -> StaticSubnet:
    """A StaticSubnet with copies of the supernet's weights at `cfg` (same dtype, device and train/eval mode)."""
    ref = next(net.parameters())
    model = StaticSubnet(net.spec, cfg).to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        model.load_state_dict({k: v.detach() for k, v in subnet_state(net, cfg).items()}, strict=True)
    return model.train(net.training)


def save_subnet(module: StaticSubnet, cfg: SubnetConfig, path: str | Path) -> None:
    """Write weights + config + spec to `path` (safetensors), atomically: a crash leaves no partial file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(tensors, str(tmp), metadata={"config": str(cfg), "spec": json.dumps(asdict(module.spec))})
    os.replace(tmp, path)


def load_subnet(path: str | Path) -> tuple[StaticSubnet, SubnetConfig]:
    """Rebuild the StaticSubnet saved by `save_subnet` (in the saved dtype, on CPU) and its config."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    missing = [k for k in ("config", "spec") if k not in meta]
    if missing:
        raise ValueError(f"load_subnet({str(path)!r}): metadata lacks {missing}; expected a file from save_subnet")
    spec, cfg = SupernetSpec(**json.loads(meta["spec"])), SubnetConfig.parse(meta["config"])
    state = load_file(str(path))
    dtype = next(v.dtype for v in state.values() if v.is_floating_point())
    model = StaticSubnet(spec, cfg).to(dtype=dtype)
    model.load_state_dict(state, strict=True)
    return model, cfg
