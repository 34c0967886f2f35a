"""The once-for-all GPU check (issue #11), one short prepared script: the ImageNet OFA-MobileNetV3 space
(`conf/model/ofa_mobilenetv3.yaml`) on synthetic 224x224 batches (no ImageNet offline; speed and energy do not
depend on pixel values).

1. Supernet training steps in bf16 autocast (SGD, cross-entropy): at the largest, a middle and the smallest
   sub-net, and with a random sub-net per step (what progressive shrinking runs). Seconds and images per second,
   and energy per step from `meter` (measured by NVML on an NVIDIA GPU; the label says when it is estimated).
2. The per-block latency table on the device at batch 1 and `--latency-batch`, against the measured whole exported
   sub-net for `--check` random sub-nets (relative error).

    python benchmarks/ofa_gpu.py --out ofa_gpu.json                  # one GPU: about 3-5 minutes
    python benchmarks/ofa_gpu.py --device cpu --batch 4 --steps 2 --warmup 1 --resolutions 128 \\
        --check 2 --latency-batch 2                                    # a smoke run of the same code on the CPU

Prints a markdown table and writes every figure (with the GPU, driver, torch and CUDA versions) as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.tasks.ofa_config import OFAModelCfg  # noqa: E402
from meter import Meter  # noqa: E402
from once_for_all import ArchSpace, SubnetConfig  # noqa: E402
from once_for_all.efficiency import LatencyTable, table_error  # noqa: E402
from once_for_all.supernet import OFASupernet  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def imagenet_spec(resolutions: list[int] | None):
    """SupernetSpec of conf/model/ofa_mobilenetv3.yaml (3 input channels, 1000 classes)."""
    raw = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "model" / "ofa_mobilenetv3.yaml"))
    raw.pop("defaults", None)
    spec = OFAModelCfg(**raw).spec(in_channels=3, num_classes=1000)
    return replace(spec, resolutions=tuple(resolutions)) if resolutions else spec


def train_steps(net, cfgs, batch: int, steps: int, warmup: int, device, meter, name: str) -> dict:
    """`steps` SGD steps in bf16 autocast, sub-net cfgs[i % len(cfgs)] at step i; seconds and energy per step."""
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    res = max(c.resolution for c in cfgs)
    x = torch.randn(batch, 3, res, res, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    kind = "cuda" if torch.device(device).type == "cuda" else "cpu"

    def step(i: int) -> None:
        cfg = cfgs[i % len(cfgs)]
        net.set_active(cfg)
        xr = x if cfg.resolution == res else F.interpolate(x, size=(cfg.resolution,) * 2, mode="bilinear")
        with torch.autocast(kind, dtype=torch.bfloat16):
            loss = F.cross_entropy(net(xr), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    net.train()
    for i in range(warmup):
        step(i)
    sync(device)
    t0 = time.perf_counter()
    with meter.window(name) as m:
        for i in range(steps):
            step(i)
        sync(device)
    seconds = time.perf_counter() - t0
    return {"sub-net": name, "steps": steps, "batch": batch, "s_per_step": seconds / steps,
            "images_per_s": batch * steps / seconds, "joules_per_step": m.joules / steps,
            "mean_watts": m.joules / seconds, "energy_method": m.method, "short_window": m.short_window}


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def latency_check(net, spec, batch: int, n_check: int, device, seed: int) -> dict:
    """Build the table at `batch` on `device`, then compare it with measured whole sub-nets."""
    t0 = time.perf_counter()
    table = LatencyTable.build(net, batch_size=batch, warmup=5, repeats=20, device=device)
    built_s = time.perf_counter() - t0
    rng = random.Random(seed)
    space = ArchSpace.full(spec)
    cfgs = [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(n_check))]
    rows = table_error(table, net, cfgs, device=device)
    errors = [abs(r["latency/rel_error"]) for r in rows]
    return {"batch": batch, "entries": len(table.blocks), "build_s": built_s,
            "largest_ms": 1e3 * rows[0]["latency/measured_s"], "smallest_ms": 1e3 * rows[1]["latency/measured_s"],
            "abs_rel_error_median": statistics.median(errors), "abs_rel_error_max": max(errors), "rows": rows}


def environment(device) -> dict:
    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": str(device)}
    if torch.device(device).type == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
            env["driver"] = pynvml.nvmlSystemGetDriverVersion()
            env["power_limit_w"] = pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1e3
        except Exception as e:  # the figures stand without these; say why they are missing
            env["nvml"] = f"unavailable: {e}"
    return env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--resolutions", type=int, nargs="*", default=[160, 192, 224],
                   help="input sizes opened (the latency table times every one of them)")
    p.add_argument("--latency-batch", type=int, default=64)
    p.add_argument("--check", type=int, default=8, help="random sub-nets the latency table is checked on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("ofa_gpu.json"))
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    spec = imagenet_spec(args.resolutions)
    net = OFASupernet(spec).to(args.device)
    space, rng = ArchSpace.full(spec), random.Random(args.seed)
    mid = SubnetConfig(tuple(5 for _ in range(spec.num_blocks)), tuple(4.0 for _ in range(spec.num_blocks)),
                       tuple(3 for _ in spec.stage_widths), spec.resolutions[len(spec.resolutions) // 2])
    space.validate(mid)
    plans = {"largest": [space.largest()], "middle (k5 e4 d3)": [mid], "smallest": [space.smallest()],
             "random per step": [space.sample(rng) for _ in range(args.steps + args.warmup)]}
    report = {"environment": environment(args.device), "spec": str(spec), "train": [], "latency": []}
    with Meter() as meter:
        for name, cfgs in plans.items():
            report["train"].append(train_steps(net, cfgs, args.batch, args.steps, args.warmup, args.device, meter,
                                               name))
    for batch in sorted({1, args.latency_batch}):
        report["latency"].append(latency_check(net, spec, batch, args.check, args.device, args.seed))
    args.out.write_text(json.dumps(report, indent=1, default=str))

    print(f"{report['environment']}\n\n| sub-net | s/step | img/s | J/step | W | energy method |\n|---|---|---|---|---|---|")
    for r in report["train"]:
        print(f"| {r['sub-net']} | {r['s_per_step']:.4f} | {r['images_per_s']:.0f} | {r['joules_per_step']:.3g} | "
              f"{r['mean_watts']:.0f} | {r['energy_method']}{' (short window)' if r['short_window'] else ''} |")
    print("\n| latency batch | table entries | build s | largest ms | smallest ms | |error| median | max |\n"
          "|---|---|---|---|---|---|---|")
    for r in report["latency"]:
        print(f"| {r['batch']} | {r['entries']} | {r['build_s']:.0f} | {r['largest_ms']:.2f} | {r['smallest_ms']:.2f} "
              f"| {r['abs_rel_error_median']:.1%} | {r['abs_rel_error_max']:.1%} |")
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
