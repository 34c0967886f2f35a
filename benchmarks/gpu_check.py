"""Every family at paper-scale shapes on synthetic data, through its task/library path and a bare PyTorch loop of
the same model in the same process: samples/s (task / bare), fp32 vs bf16 vs compiled, NVML joules per step,
peak memory, and the GPU's name, driver and power limit. One command, one JSON:

  python benchmarks/gpu_check.py --out gpu_check.json            # on one GPU (about 8 min on an H100)
  python benchmarks/gpu_check.py --smoke --out smoke.json        # tiny shapes, a few steps: runs on a CPU

Families (paper shapes; --smoke shrinks them):
  resnet20_cifar   ResNet-20, 32x32, batch 128; task path experiments.trainer.fit (SGD, crop+flip)
  ofa_mbv3         OFA-MobileNetV3 space at 224x224, batch 64; once_for_all.train_phase on the elastic supernet
                   (one random sub-net per step); its compile arm trains the exported largest sub-net (static:
                   the elastic net would recompile per sub-net) through train_static
  arnet            AR-Net shape: ResNet-50 backbones at 224/168/112, MobileNetV2 policy at 84 + LSTM 512,
                   16 frames, 4 videos per batch; adaptive_frames.stages.train_policy (joint, backbones trained)
  moe_gpt_small    GPT-small (12 layers, d 768, 12 heads, 1024 tokens, vocab 50257) with MoE FFNs E=8 top-2 (GShard router),
                   batch 8; task path experiments.trainer.fit with the MoE objective
Arms: fp32 eager, bf16 autocast, torch.compile (fp32). Every arm of every family is wrapped: an error is recorded
in the JSON and the rest still run; arms past --budget-s are skipped (compile arms run last).

Tasks (`--tasks`, default on a GPU: every experiment that runs offline): each through the real CLI under
debug=fast on the device in bf16 (`python -m experiments.run experiment=E debug=fast device=... precision=bf16`),
so the paths the arms above do not touch run too (OFA sub-net recalibration/evaluation on the device, the AF stages
and their checkpoints, NVML energy in the rows): exit code, wall time, and what the rows say (runtime/device,
energy methods, joules).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.runtime import Runtime, resolve_device  # noqa: E402

ARMS = {"fp32": {}, "bf16": {"precision": "bf16"}, "compile": {"compile": True}}


# ---------------------------------------------------------------------------------------------- instruments
class Clock:
    """Called at every step end: synchronises the device, keeps the time, and reads NVML energy at the end of
    the warm-up and at the last step."""

    def __init__(self, rt: Runtime, warmup: int, steps: int, energy) -> None:
        self.rt, self.warmup, self.steps, self.energy = rt, warmup, steps, energy
        self.ends: list[float] = []
        self.joules: list[float] = []

    def __call__(self, *_args) -> None:
        self.rt.sync()
        self.ends.append(time.perf_counter())
        if self.energy is not None and len(self.ends) in (self.warmup + 1, self.steps):
            self.joules.append(self.energy())

    def result(self, per_step_samples: int) -> dict:
        timed = self.ends[self.warmup:]
        if len(timed) < 2:
            raise RuntimeError(f"only {len(self.ends)} step ends seen; need warmup + 2")
        out = {"samples_per_s": per_step_samples * (len(timed) - 1) / (timed[-1] - timed[0]),
               "step_s": (timed[-1] - timed[0]) / (len(timed) - 1), "timed_steps": len(timed) - 1}
        if len(self.joules) == 2:
            out["joules_per_step"] = (self.joules[1] - self.joules[0]) / (len(timed) - 1)
        return out


def nvml_energy():
    """(a reader of this process's GPUs' total energy in J via meter's NVML source, or None; why not)."""
    try:
        from meter.sources.nvml import open_nvml

        source = open_nvml({"gpu"})
    except Exception as e:  # noqa: BLE001 - no NVML here: recorded, not fatal
        return None, f"{type(e).__name__}: {e}"
    return (lambda: sum(source.read().values())), "meter.sources.nvml (" + ",".join(source.keys()) + ")"


def gpu_info(device: torch.device) -> dict:
    info = {"device": str(device), "torch": torch.__version__, "cuda": torch.version.cuda}
    if device.type != "cuda":
        return info
    info["gpu_name"] = torch.cuda.get_device_name(device)
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
        driver = pynvml.nvmlSystemGetDriverVersion()
        info["driver"] = driver.decode() if isinstance(driver, bytes) else driver
        info["power_limit_w"] = pynvml.nvmlDeviceGetPowerManagementLimit(handle) / 1000.0
    except Exception as e:  # noqa: BLE001
        info["nvml_error"] = f"{type(e).__name__}: {e}"
    return info


def measure(fn, rt: Runtime, steps: int, warmup: int, samples: int, energy) -> dict:
    """fn(rt, steps, clock) runs `steps` training steps, calling clock() after each."""
    if rt.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(rt.device)
    clock = Clock(rt, warmup, steps, energy)
    fn(rt, steps, clock)
    out = clock.result(samples)
    if rt.device.type == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated(rt.device) / 2**30
    return out


# ---------------------------------------------------------------------------------------------- families
class ResNet20:
    samples_label = "images"

    def __init__(self, smoke: bool) -> None:
        self.batch = 8 if smoke else 128

    def data(self, steps):
        from experiments.data import Splits

        g = torch.Generator().manual_seed(0)
        n = self.batch * steps
        x, y = torch.randn(n + 16, 3, 32, 32, generator=g), torch.randint(0, 10, (n + 16,), generator=g)
        return Splits(x[:n], y[:n], x[n:n + 8], y[n:n + 8], x[n + 8:], y[n + 8:])

    def model(self):
        from lth import build_model

        torch.manual_seed(0)
        return build_model("resnet20", 3 * 32 * 32, 10)

    def task(self, rt, steps, clock):
        from experiments.callbacks import Callback
        from experiments.config import OptimCfg
        from experiments.trainer import fit
        from meter import Meter, MeterConfig

        class Tick(Callback):
            def on_step_end(self, loop, loss):
                clock()

        optim = OptimCfg(name="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=self.batch, steps=steps,
                         augment="crop_flip", eval_every=10**9)
        with Meter(MeterConfig(), out_dir=None) as meter:
            fit(self.model(), self.data(steps), optim, seed=0, total_steps=steps, meter=meter, progress=False,
                runtime=rt, callbacks=[Tick()])

    def bare(self, rt, steps, clock):
        from experiments.augment import crop_flip
        from experiments.batches import epoch_order

        model = self.model().to(rt.device)
        fwd = torch.compile(model) if rt.compile else model
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        data = self.data(steps)
        x, y = data.x_train.to(rt.device), data.y_train.to(rt.device)
        order = epoch_order(0, 0, len(x)).to(rt.device)
        for i in range(steps):
            idx = order[i * self.batch:(i + 1) * self.batch]
            xb = crop_flip(x[idx], torch.Generator().manual_seed(i))
            with rt.autocast():
                loss = F.cross_entropy(fwd(xb).float(), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            clock()


class OFAMobileNetV3:
    samples_label = "images"

    def __init__(self, smoke: bool) -> None:
        from once_for_all import SupernetSpec

        self.batch, self.res = (4, 32) if smoke else (64, 224)
        if smoke:
            self.spec = SupernetSpec(dims=2, in_channels=3, num_classes=10, stem_channels=8, stage_widths=(8, 16),
                                     stage_strides=(2, 2), stage_se=(False, True), resolutions=(self.res,))
        else:  # conf/model/ofa_mobilenetv3.yaml
            self.spec = SupernetSpec(
                dims=2, in_channels=3, num_classes=1000, stem_channels=16, stem_stride=2, first_block_channels=16,
                stage_widths=(24, 40, 80, 112, 160), stage_strides=(2, 2, 2, 1, 2),
                stage_se=(False, True, False, True, True), stage_acts=("relu", "relu", "hswish", "hswish", "hswish"),
                kernel_sizes=(3, 5, 7), expand_ratios=(3, 4, 6), depths=(2, 3, 4), resolutions=(self.res,),
                head_channels=960, feature_channels=1280, dropout=0.1)
        from once_for_all.train_flops import TrainFlops

        self.flops = TrainFlops()  # shared by repeats: counts each block choice once, as a long run does

    def phase(self, static: bool):
        from once_for_all import Phase

        if static:
            return Phase("static", 1, 0.1, sampler="static", distill=False)
        return Phase("no_ps", 1, 0.1, kernel_sizes="all", expand_ratios="all", depths="all",
                     resolutions=[self.res], distill=False)

    def data(self, steps, device):
        g = torch.Generator().manual_seed(0)
        n = self.batch * steps
        x = torch.randn(n, 3, self.res, self.res, generator=g)
        return x.to(device), torch.randint(0, self.spec.num_classes, (n,), generator=g).to(device)

    def nets(self, rt):
        """(the net trained, what runs its forward) on rt.device: the supernet, or under compile the exported
        largest sub-net and its compiled wrapper."""
        from once_for_all import ArchSpace, OFASupernet, export_subnet

        torch.manual_seed(0)
        net = OFASupernet(self.spec)
        if rt.compile:
            net = export_subnet(net, ArchSpace.full(self.spec).largest())
        net.to(rt.device)
        fwd, _ = rt.prepare_model(net)
        return net, fwd

    def task(self, rt, steps, clock):
        from once_for_all import OptimConfig
        from once_for_all.training import Batches, train_phase

        net, fwd = self.nets(rt)
        x, y = self.data(steps, rt.device)
        train_phase(net, self.phase(rt.compile), Batches(x, y, self.batch), optim=OptimConfig(), flops=self.flops,
                    grad_sync=clock, device=rt.device, autocast=rt.autocast, scaler=rt.grad_scaler(),
                    forward=fwd if fwd is not net else None)

    def bare(self, rt, steps, clock):
        import random

        from once_for_all.training import SAMPLERS, OptimConfig, build_optimizer, derive_seed

        net, fwd = self.nets(rt)
        x, y = self.data(steps, rt.device)
        phase = self.phase(rt.compile)
        space = None if rt.compile else phase.space(net.spec)
        opt = build_optimizer(net, OptimConfig())
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(derive_seed(0, phase.name, "data", 0)))
        for step in range(steps):
            idx = order[step * self.batch:(step + 1) * self.batch]
            if space is not None:
                (cfg,) = SAMPLERS.get(phase.sampler).sample(space, random.Random(derive_seed(0, phase.name, "arch",
                                                                                           step)), 1)
                net.set_active(cfg)
            with rt.autocast():
                loss = F.cross_entropy(fwd(x[idx]).float(), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            clock()  # where the library path's grad_sync hook ticks: before the optimizer step
            opt.step()


class ARNet:
    samples_label = "videos"

    def __init__(self, smoke: bool) -> None:
        from adaptive_frames import ModelConfig
        from adaptive_frames.policy import PolicyConfig

        if smoke:
            self.frames, self.batch, self.res = 4, 2, 32
            self.cfg = ModelConfig(num_classes=10, in_channels=3, backbone="tiny_cnn", resolutions=[32, 24, 16],
                                   policy=PolicyConfig(encoder="tiny_cnn", input_size=16, cell="lstm"))
        else:
            self.frames, self.batch, self.res = 16, 4, 224
            self.cfg = ModelConfig(num_classes=200, in_channels=3, backbone="resnet50", resolutions=[224, 168, 112],
                                   skips=[1, 2, 4], policy=PolicyConfig(encoder="mobilenet_v2", input_size=84,
                                                                        feature_dim=1280, hidden=512, cell="lstm"))

    def setup(self, rt, steps):
        from adaptive_frames import AdaptiveFrameModel

        torch.manual_seed(0)
        model = AdaptiveFrameModel(self.cfg).to(rt.device)
        g = torch.Generator().manual_seed(0)
        n = self.batch * steps
        clips = torch.randn(n, self.frames, 3, self.res, self.res, generator=g)
        return model, clips.to(rt.device), torch.randint(0, self.cfg.num_classes, (n,), generator=g).to(rt.device)

    def task(self, rt, steps, clock):
        from adaptive_frames.stages import Compute, PolicyTrainConfig, train_policy

        if rt.compile:
            raise NotImplementedError("not compiled: the policy routes frames per video (shapes vary per batch)")
        model, clips, labels = self.setup(rt, steps)
        loader = _Ticking([(clips[i:i + self.batch], labels[i:i + self.batch], torch.arange(i, i + self.batch))
                           for i in range(0, len(clips), self.batch)], clock)
        train_policy(model, loader, torch.optim.Adam(model.parameters(), lr=1e-4), PolicyTrainConfig(epochs=1),
                     generator=torch.Generator(device=rt.device).manual_seed(0),
                     compute=Compute(rt.device, rt.autocast, rt.grad_scaler()))

    def bare(self, rt, steps, clock):
        from adaptive_frames.losses import efficiency_term

        if rt.compile:
            raise NotImplementedError("not compiled: the policy routes frames per video (shapes vary per batch)")
        model, clips, labels = self.setup(rt, steps)
        opt, top = torch.optim.Adam(model.parameters(), lr=1e-4), model.costs().top
        gen = torch.Generator(device=rt.device).manual_seed(0)
        model.train()
        for i in range(0, len(clips), self.batch):
            with rt.autocast():
                out = model.forward_train(clips[i:i + self.batch], 5.0, generator=gen)
                loss = F.cross_entropy(out.logits.float(), labels[i:i + self.batch]) + 0.1 * efficiency_term(
                    out.flops, self.frames, top)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            clock()


class _Ticking:
    """A list of batches that ticks the clock before yielding each next one (= after each step) and at the end."""

    def __init__(self, batches, clock) -> None:
        self.batches, self.clock = batches, clock

    def __iter__(self):
        for i, b in enumerate(self.batches):
            if i:
                self.clock()
            yield b
        self.clock()


class MoEGPTSmall:
    samples_label = "sequences"

    def __init__(self, smoke: bool) -> None:
        from sparse_moe import MoEConfig
        from sparse_moe.models import CharTransformerConfig

        moe = MoEConfig(num_experts=8, top_k=2, router="gshard")
        if smoke:
            self.batch, self.cfg = 2, CharTransformerConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2,
                                                            d_model=32, d_ff=64, moe=moe)
        else:
            self.batch, self.cfg = 8, CharTransformerConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12,
                                                            d_model=768, d_ff=3072, moe=moe)

    def model(self):
        from sparse_moe.models import build_model

        torch.manual_seed(0)
        return build_model("char_transformer", self.cfg)

    def data(self, steps):
        from experiments.data import Splits

        g = torch.Generator().manual_seed(0)
        n, s = self.batch * steps + 2, self.cfg.block_size
        x = torch.randint(0, self.cfg.vocab_size, (n, s + 1), generator=g)
        x, y = x[:, :-1], x[:, 1:]
        return Splits(x[:-2], y[:-2], x[-2:-1], y[-2:-1], x[-1:], y[-1:])

    def task(self, rt, steps, clock):
        from experiments.callbacks import Callback
        from experiments.config import OptimCfg
        from experiments.objectives import LanguageModel
        from experiments.tasks.moe import MoEObjective
        from experiments.trainer import FitSpec, Services, fit
        from meter import Meter, MeterConfig

        class Tick(Callback):
            def on_step_end(self, loop, loss):
                clock()

        optim = OptimCfg(name="adam", lr=3e-4, batch_size=self.batch, steps=steps, eval_every=10**9)
        with Meter(MeterConfig(), out_dir=None) as meter:
            fit(self.model(), self.data(steps), optim,
                FitSpec(total_steps=steps, seed=0, objective=MoEObjective(LanguageModel())),
                Services(meter=meter, progress=False, runtime=rt), callbacks=[Tick()])

    def bare(self, rt, steps, clock):
        from sparse_moe import total_aux_loss

        model = self.model().to(rt.device)
        fwd = torch.compile(model) if rt.compile else model
        opt = torch.optim.Adam(model.parameters(), lr=3e-4)
        data = self.data(steps)
        x, y = data.x_train.to(rt.device), data.y_train.to(rt.device)
        model.train()
        for i in range(steps):
            xb, yb = x[i * self.batch:(i + 1) * self.batch], y[i * self.batch:(i + 1) * self.batch]
            with rt.autocast():
                logits, auxes = fwd(xb)
                loss = F.cross_entropy(logits.float().flatten(0, 1), yb.flatten()) + total_aux_loss(auxes)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            clock()


FAMILIES = {"resnet20_cifar": ResNet20, "ofa_mbv3": OFAMobileNetV3, "arnet": ARNet, "moe_gpt_small": MoEGPTSmall}


# ---------------------------------------------------------------------------------------------- tasks
OFFLINE_TASKS = ("lth_mnist1d", "moe_clustered", "moe_charlm", "ofa_mnist1d", "af_needle")  # no data files needed


def run_task(experiment: str, device: torch.device, precision: str, folder: Path, timeout_s: float) -> dict:
    """One experiment under debug=fast through the CLI on `device`: exit code, wall seconds, and its rows' runtime
    and energy labels (the whole-task GPU path: data, model, eval, checkpoints, NVML)."""
    run_dir = folder / experiment
    cmd = [sys.executable, "-m", "experiments.run", f"experiment={experiment}", "debug=fast", "progress=false",
           f"device={device}", f"precision={precision}", f"hydra.run.dir={run_dir}"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
                              timeout=timeout_s, env={**os.environ, "WANDB_MODE": "disabled"})
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:g} s", "wall_s": time.perf_counter() - t0}
    out = {"returncode": proc.returncode, "wall_s": time.perf_counter() - t0}
    summary = run_dir / "summary.json"
    if proc.returncode != 0 or not summary.exists():
        return {**out, "stderr_tail": proc.stderr[-2000:]}
    rows = json.loads(summary.read_text())["records"]
    out.update(rows=len(rows), devices=sorted({str(r.get("runtime/device")) for r in rows}),
               precision=sorted({str(r.get("runtime/precision")) for r in rows}),
               energy_methods=sorted({str(r.get("energy/method")) for r in rows}),
               joules=sum(r.get("energy/joules") or 0.0 for r in rows))
    return out


# ---------------------------------------------------------------------------------------------- main
def run_arm(family, rt: Runtime, args, energy) -> dict:
    samples = family.batch
    out = {}
    for path in ("task", "bare"):
        out[path] = []
    for r in range(args.repeats):  # alternate which path goes first
        for path in (("task", "bare") if r % 2 == 0 else ("bare", "task")):
            out[path].append(measure(getattr(family, path), rt, args.steps, args.warmup, samples, energy))
    med = {p: {k: statistics.median(run[k] for run in out[p]) for k in out[p][0]} for p in out}
    return {"task": med["task"], "bare": med["bare"],
            "ratio_task_over_bare": med["task"]["samples_per_s"] / med["bare"]["samples_per_s"], "runs": out}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, a few steps (runs on a CPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--steps", type=int, default=None, help="steps per measurement (default 12; smoke 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed first steps (default 3; smoke 1)")
    parser.add_argument("--repeats", type=int, default=None, help="alternating repeats (default 2; smoke 1)")
    parser.add_argument("--budget-s", type=float, default=450.0, help="skip arms that would start after this")
    parser.add_argument("--tasks", default=None, help="experiments to run through the CLI under debug=fast, "
                        f"comma-separated, or none (default: {','.join(OFFLINE_TASKS)} on a GPU, none on a CPU)")
    parser.add_argument("--task-timeout-s", type=float, default=120.0)
    args = parser.parse_args(argv)
    args.steps = args.steps or (3 if args.smoke else 12)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 3)
    args.repeats = args.repeats or (1 if args.smoke else 2)
    start = time.perf_counter()
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    energy, energy_source = nvml_energy()
    report = {"info": {**gpu_info(device), "energy_source": energy_source, "smoke": args.smoke,
                       "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats}, "families": {}}
    families = {name: FAMILIES[name](args.smoke) for name in args.families.split(",")}
    arms = [a for a in ARMS if a in args.arms.split(",")]  # compile last: it is the slow one to start
    for arm in arms:
        for name, family in families.items():
            entry = report["families"].setdefault(name, {"batch": family.batch, "unit": family.samples_label})
            if time.perf_counter() - start > args.budget_s:
                entry[arm] = {"skipped": f"past --budget-s {args.budget_s:g}"}
                continue
            rt = replace(Runtime(device=device), **ARMS[arm])
            t0 = time.perf_counter()
            try:
                entry[arm] = run_arm(family, rt, args, energy)
            except NotImplementedError as e:
                entry[arm] = {"not_applicable": str(e)}
            except Exception as e:  # noqa: BLE001 - recorded; the other arms still run
                entry[arm] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
            entry[arm]["wall_s"] = time.perf_counter() - t0
            ratio = entry[arm].get("ratio_task_over_bare")
            print(f"{name:15s} {arm:8s} " + (f"task/bare {ratio:.3f}  task {entry[arm]['task']['samples_per_s']:.1f} "
                                             f"{family.samples_label}/s" if ratio else str(
                                                 {k: v for k, v in entry[arm].items() if k != "traceback"})),
                  flush=True)
    for entry in report["families"].values():
        base = entry.get("fp32", {}).get("bare", {}).get("samples_per_s")
        for arm in arms:
            bare = entry.get(arm, {}).get("bare", {}).get("samples_per_s")
            if base and bare:
                entry[arm]["bare_speedup_vs_fp32"] = bare / base
    tasks = args.tasks if args.tasks is not None else ",".join(OFFLINE_TASKS) if device.type == "cuda" else ""
    precision = "bf16" if device.type != "cuda" or torch.cuda.is_bf16_supported() else "fp32"
    with tempfile.TemporaryDirectory(prefix="gpu_check_tasks_") as folder:
        for experiment in filter(None, tasks.split(",") if tasks != "none" else []):
            result = run_task(experiment, device, precision, Path(folder), args.task_timeout_s)
            report.setdefault("tasks", {})[experiment] = result
            print(f"task {experiment:15s} " + json.dumps({k: v for k, v in result.items() if k != "stderr_tail"}),
                  flush=True)
    report["info"]["wall_s"] = time.perf_counter() - start
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
