"""Once-for-all (Cai et al. 2020): train one supernet, specialise a sub-net per FLOPs target, and the baselines.

One job, resumable units under the job folder (each leaves `result.json`; a rerun skips finished units and resumes
an unfinished training from its last epoch checkpoint), one row per unit:
  supernet/            the schedule (`method.training`: progressive shrinking, no_ps or sandwich)  kind supernet
  corners/<name>/      the 8 corner sub-nets, BN-recalibrated, on the test split                  kind ofa_corner
  latency_table/       per-block latency table measured on this machine                          kind latency_table
  predictor/           N recalibrated sub-nets on the validation split -> accuracy predictor      kind predictor
  targets/t<frac>/     evolutionary search under cost <= frac x full net (+ constraints), tested kind ofa_target
  scratch/<corner>/    the corner architectures trained from scratch (baseline)                  kind scratch_corner
  width/t<frac>/       the full net at the width multiplier of <= that cost, from scratch        kind width_multiplier
Specialisation trains nothing: its rows carry `flops/train_total` 0 and the energy of search and evaluation.
With `method.supernet_from`, the supernet and predictor units copy an earlier job's instead of training them (a
predictor of other settings is refitted to that job's measured sub-nets).
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import torch
from omegaconf import OmegaConf

from experiments import distributed
from experiments.checkpoint import exists, load_checkpoint, load_latest, save_checkpoint
from experiments.context import RunContext
from experiments.preemption import Preempted
from experiments.progress import UNIT_COUNTS
from experiments.records import atomic_write_json, read_json
from experiments.schema import ConfigError
from experiments.streaming import StreamingSplits
from experiments.tasks.lth import load_data
from experiments.tasks.ofa_config import PREDICTOR_KEYS, predictor_settings, teacher_arg, to_phase
from experiments.tasks.ofa_eval import (
    WIDTH_COSTS,
    accuracy,
    as_channels,
    deployment_costs,
    evaluate_subnet,
    recalibrate,
    recalibration_set,
    scaled_spec,
    width_multiplier_for,
)
from experiments.tasks.ofa_stream import Resized, hold_eval_sets
from experiments.tasks.registry import TASKS
from experiments.trainer import carbon_gate
from experiments.units import run_unit
from meter import Measurement
from meter.flops import CONVENTION, param_counts
from meter.registry import Registry
from once_for_all import ArchSpace, SubnetConfig
from once_for_all.efficiency import LatencyTable
from once_for_all.export import StaticSubnet, export_subnet, save_subnet
from once_for_all.flops import FlopsTable
from once_for_all.predictor import PredictorEnsemble
from once_for_all.schedule import SCHEDULES, Phase
from once_for_all.search import EvolutionSearch
from once_for_all.supernet import OFASupernet, resize_input
from once_for_all.training import (
    Batches,
    OptimConfig,
    SourceBatches,
    TrainFlops,
    train_schedule,
    train_static,
)

log = logging.getLogger(__name__)


@dataclass
class Job:
    """What every unit of one OFA job shares."""

    cfg: object
    ctx: RunContext
    data: object  # lth.data.Splits with x as [N, C, L] or [N, C, H, W]
    spec: object  # once_for_all.SupernetSpec
    table: FlopsTable
    recal: list[torch.Tensor]
    eval_data: str | None = None  # streaming data: what recalibration and evaluation held in memory (ofa_stream)

    @property
    def latency_device(self) -> torch.device:
        """method.latency_device resolved: the run's device, or the CPU."""
        return torch.device("cpu") if self.cfg.method.latency_device == "cpu" else self.ctx.runtime.device

    @property
    def latency_timer(self) -> str:
        """method.latency_timer with auto resolved: thread CPU time at one intra-op thread on a CPU, else wall time
        (an accelerator's time is not the thread's; a thread_cpu asked for there is a config error)."""
        timer = self.cfg.method.latency_timer
        on_cpu = self.latency_device.type == "cpu"
        if timer == "thread_cpu" and not on_cpu:
            raise ConfigError(f"method.latency_timer='thread_cpu' is invalid with latency on {self.latency_device}; "
                              "allowed: wall or auto (or method.latency_device=cpu)")
        return timer if timer != "auto" else "thread_cpu" if on_cpu and torch.get_num_threads() == 1 else "wall"

    @cached_property
    def full_flops(self) -> int:
        return self.table.predict(ArchSpace.full(self.spec).largest())

    def batches(self) -> Batches | SourceBatches:
        """The global batch optim.batch_size; under torch.distributed this rank's shard of each. Streaming data:
        the splits' own loader source (its order rule: experiments.batches.epoch_order)."""
        rank, size = distributed.world()
        if isinstance(self.data, StreamingSplits):
            return SourceBatches(self.source, world_size=size)
        return Batches(self.data.x_train, self.data.y_train, self.cfg.optim.batch_size, rank, size)

    @cached_property
    def source(self):
        """Streaming data: one training source for the job (its DataLoader and workers are reused)."""
        return self.data.train_batches(self.cfg.optim.batch_size, self.cfg.seed)

    def on_device(self, model: torch.nn.Module, static: bool) -> tuple[dict, str]:
        """(train_phase keywords of the run's Runtime, what was compiled) with `model` moved to its device. The
        elastic supernet recompiles for every new sub-net (24-78 s each on CPU), so only a `static` model is
        compiled. Evaluation and BN recalibration run where the model is; latency and energy per inference on a
        CPU copy (ofa_eval.deployment_costs)."""
        rt = self.ctx.runtime
        forward, compiled = rt.prepare_model(model, compile_it=rt.compile and static)
        if rt.compile and not static:
            compiled = "none (elastic supernet: compiled per sub-net would recompile)"
        return {"device": rt.device, "autocast": rt.autocast, "scaler": rt.grad_scaler(),
                "forward": forward if forward is not model else None}, compiled

    def optim(self) -> OptimConfig:
        o = self.cfg.optim
        return OptimConfig(name=o.name, momentum=o.momentum, weight_decay=o.weight_decay)


def resumable(job: Job, unit_dir: Path, tag: str,
              phases: list | None = None) -> tuple[dict | None, Callable[[dict], None]]:
    """(state to resume from or None, the epoch-end hook that logs the epoch's row, prints the job's progress line,
    checkpoints with the log's position and honours preemption/carbon plans). On resume the log is cut back to the
    checkpoint's position, and on a fresh start to before this unit's rows (`tag` names one unit), so each epoch
    row appears once. `phases`: what the unit trains (their epochs size its progress; None: no progress lines)."""
    path = unit_dir / "checkpoint.pt"
    state = load_latest(path) if exists(path) else None
    job.ctx.logger.start_unit(tag, None if state is None else state.get("log_position"))
    unit = None
    if phases and distributed.is_main():
        spe = len(job.batches())
        before = [spe * sum(p.epochs for p in phases[:i]) for i in range(len(phases))]  # steps ahead of phase i
        done = 0 if state is None else before[state.get("phase_index", 0)] + state["step"]
        unit = job.ctx.progress.unit(tag, done, max(1, spe * sum(p.epochs for p in phases)), spe)

    def on_epoch_end(s: dict) -> None:
        last = s["history"][-1] if s["history"] else {}
        job.ctx.logger.log({"unit": tag, "phase": s["phase"], "epoch": s["epoch"], "train/loss": last.get("loss")},
                           s["step"])
        if unit is not None:  # one line per epoch in a log file (a bar on a terminal), as every task
            unit.tag = f"{tag}/{s['phase']}" if len(phases) > 1 else tag
            unit.epoch_end(before[s.get("phase_index", 0)] + s["step"],
                           {"loss": last.get("loss"), "lr": last.get("lr")})
            if s.get("phase_index", 0) == len(phases) - 1 and s["epoch"] == phases[-1].epochs:
                unit.close()
        if distributed.is_main():
            save_checkpoint(path, {**s, "log_position": job.ctx.logger.position()})
        if job.ctx.preemption.poll():  # any rank's signal: every rank stops after this same epoch
            distributed.barrier()  # rank 0's checkpoint is on disk before any rank leaves
            raise Preempted(job.ctx.preemption.agreed, s["step"])
        carbon_gate(job.ctx.carbon_plan, s["step"], tag)

    return state, on_epoch_end


def measured(histories: list[dict]) -> Measurement:
    """The sum of every epoch window of the given train_phase results (across restarts: checkpointed)."""
    return sum(Measurement.from_dict(h["energy"]) for r in histories for h in r["history"])


def base_row(job: Job, kind: str, cfg: SubnetConfig | None, model: torch.nn.Module | None,
             table: FlopsTable | None = None) -> dict:
    """Identity of a unit's sub-net and its size; `table` prices `cfg` when it is not of the job's space."""
    total, nonzero = param_counts(model) if model is not None else (None, None)
    flops = (table or job.table).predict(cfg) if cfg is not None else None
    return {"ofa/kind": kind, "ofa/training": job.cfg.method.training, "ofa/subnet": str(cfg) if cfg else None,
            "flops/infer_per_sample": flops, "flops/infer_per_sample_dense": job.full_flops,
            "flops/fraction_of_full": flops / job.full_flops if flops else None, "flops/convention": CONVENTION,
            "params/total": total, "params/nonzero": nonzero,
            **({"ofa/eval_data": job.eval_data} if job.eval_data is not None else {})}


def phases_of(cfg) -> list:
    """`method.phases` for progressive shrinking; a baseline schedule (no_ps, no_ps_kd, sandwich) derived from them
    with as many sub-net passes."""
    return SCHEDULES.get(cfg.method.training)(ps=[to_phase(p) for p in cfg.method.phases])


def train_supernet(job: Job) -> OFASupernet:
    unit_dir = job.ctx.job_dir / "supernet"
    torch.manual_seed(job.cfg.seed)
    net = OFASupernet(job.spec)
    if job.cfg.ddp.sync_bn:
        distributed.convert_sync_bn(net)  # BN statistics over the global batch, as in one process
    final = unit_dir / "final.pt"

    def reuse() -> dict:
        return reused_supernet(job, net, final)

    def work() -> dict:
        m, phases = job.cfg.method, phases_of(job.cfg)
        state, hook = resumable(job, unit_dir, "supernet", phases)
        device_kw, compiled = job.on_device(net, static=False)
        device_kw.pop("forward")
        results = train_schedule(net, phases, job.batches(), state=state, on_epoch_end=hook,
                                 teacher_after=teacher_arg(m.teacher),
                                 seed=job.cfg.seed, kd_weight=m.kd_weight, label_smoothing=m.label_smoothing,
                                 optim=job.optim(), meter=distributed.summed_meter(job.ctx.meter),
                                 flops=TrainFlops(), grad_sync=distributed.sync_step, **device_kw)
        if distributed.is_main():
            save_checkpoint(final, {"model": net.state_dict()})
        distributed.barrier()  # rank 0 has written final.pt before any rank reads it
        largest = ArchSpace.full(job.spec).largest()
        with job.ctx.meter.window("eval"):
            acc = evaluate_subnet(net, largest, job.recal, job.data.x_test, job.data.y_test)
        net.load_state_dict(load_checkpoint(final)["model"])  # the saved weights, before recalibration
        per_phase = {f"phase/{r['phase']}/{k}": v for r in results
                     for k, v in (("epochs", r["epoch"]), ("warmup_steps", r.get("warmup_steps", 0)),
                                  ("flops_train", r["counters"]["flops_train"]),
                                  ("subnet_steps", r["counters"]["subnet_steps"]),
                                  ("joules", measured([r]).joules))}
        return {**base_row(job, "supernet", largest, export_subnet(net, largest)), "acc/test": acc,
                "runtime/compile": compiled,
                "flops/train_total": sum(r["counters"]["flops_train"] for r in results), **per_phase,
                **measured(results).row()}

    run_unit(unit_dir, job.ctx, reuse if job.cfg.method.supernet_from else work)
    net.load_state_dict(load_checkpoint(final)["model"])
    return net.to(job.ctx.runtime.device)  # sub-nets are recalibrated and evaluated on the run's device


def reused_supernet(job: Job, net: OFASupernet, final: Path) -> dict:
    """The supernet of the job in `method.supernet_from`, copied in and tested; trains nothing (its row carries no
    training cost: that stays with the job that trained it)."""
    source = Path(job.cfg.method.supernet_from)
    net.load_state_dict(load_checkpoint(source / "supernet" / "final.pt")["model"])
    net.to(job.ctx.runtime.device)
    if distributed.is_main():
        save_checkpoint(final, {"model": net.state_dict()})
    distributed.barrier()  # rank 0 has written final.pt before any rank reads it
    largest = ArchSpace.full(job.spec).largest()
    with job.ctx.meter.window("eval") as w:
        acc = evaluate_subnet(net, largest, job.recal, job.data.x_test, job.data.y_test)
    net.load_state_dict(load_checkpoint(final)["model"])
    return {**base_row(job, "supernet", largest, export_subnet(net, largest)), "acc/test": acc,
            "flops/train_total": 0, "ofa/supernet_from": str(source.resolve()), **w.row()}


def evaluate_corners(job: Job, net: OFASupernet, latency: LatencyTable) -> None:
    for name, cfg in ArchSpace.full(job.spec).corners().items():
        def work(cfg=cfg, name=name) -> dict:
            with job.ctx.meter.window("corner") as w:
                acc = evaluate_subnet(net, cfg, job.recal, job.data.x_test, job.data.y_test)
                model = export_subnet(net, cfg)
                costs = deployment_costs(model, job.spec, cfg, job.ctx.meter, batch=job.cfg.method.latency_batch,
                                         repeats=job.cfg.method.latency_repeats, table=latency,
                                         device=job.latency_device)
            return {**base_row(job, "ofa_corner", cfg, model), "ofa/corner": name, "acc/test": acc,
                    "flops/train_total": 0, **costs, **w.row()}

        run_unit(job.ctx.job_dir / "corners" / name, job.ctx, work)


def latency_table(job: Job, net: OFASupernet) -> LatencyTable:
    unit_dir = job.ctx.job_dir / "latency_table"
    path = unit_dir / "table.json"

    def work() -> dict:
        with job.ctx.meter.window("latency_table") as w:
            table = LatencyTable.build(net, batch_size=1, warmup=2, repeats=job.cfg.method.latency_repeats,
                                       device=job.latency_device, timer=job.latency_timer)
        if distributed.is_main():  # every rank reads rank 0's table (after run_unit's barrier)
            atomic_write_json(path, table.to_dict())
        return {**base_row(job, "latency_table", None, None), "acc/test": None, "flops/train_total": 0,
                "latency/entries": len(table.blocks), "latency/num_threads": table.num_threads,
                "latency/device": str(job.latency_device), **w.row()}

    run_unit(unit_dir, job.ctx, work)
    return LatencyTable.from_dict(read_json(path))


def train_predictor(job: Job, net: OFASupernet) -> PredictorEnsemble:
    """N distinct random sub-nets, recalibrated and scored on the validation split (never the test split), and the
    predictor fitted to them. With `method.supernet_from`: that job's predictor when it was fitted with the same
    settings, else a predictor fitted here to that job's measured sub-nets (seconds: nothing is re-evaluated)."""
    unit_dir = job.ctx.job_dir / "predictor"
    space, m = ArchSpace.full(job.spec), job.cfg.method
    predictor = PredictorEnsemble(space.encoding_size, m.predictor_ensemble, link=m.predictor_link,
                                  bootstrap=m.predictor_bootstrap)

    def fit(enc: torch.Tensor, accs: torch.Tensor) -> dict:
        n_hold = max(2, int(round(m.predictor_holdout * len(accs))))
        predictor.fit(enc[n_hold:], accs[n_hold:], seed=job.cfg.seed, epochs=m.predictor_epochs)
        held = predictor.evaluate(enc[:n_hold], accs[:n_hold].numpy())
        save_checkpoint(unit_dir / "predictor.pt", {"model": predictor.state_dict(), "encodings": enc, "accs": accs})
        return {**base_row(job, "predictor", None, None), "acc/test": None, "flops/train_total": 0,
                "predictor/samples": len(accs), "predictor/held_out": n_hold,
                "predictor/rmse_points": 100 * held["rmse"], "predictor/kendall_tau": held["kendall_tau"],
                "predictor/val_acc_mean": float(accs.mean()), "predictor/val_acc_std": float(accs.std()),
                "predictor/link": m.predictor_link, "predictor/ensemble": m.predictor_ensemble,
                "predictor/bootstrap": m.predictor_bootstrap}

    def work() -> dict:
        rng, cfgs = random.Random(job.cfg.seed * 7 + 1), {}
        while len(cfgs) < m.predictor_samples:
            c = space.sample(rng).canonical(job.spec)
            cfgs.setdefault(str(c), c)
        with job.ctx.meter.window("predictor") as w:
            accs = torch.tensor([evaluate_subnet(net, c, job.recal, job.data.x_val, job.data.y_val)
                                 for c in cfgs.values()])
            row = fit(torch.stack([space.encode(c) for c in cfgs.values()]), accs)
        return {**row, **w.row()}

    def reuse() -> dict:
        """The predictor of the job in `method.supernet_from`: fitted to that same supernet, so only searching is
        left to pay for here (its row repeats the source's held-out error, and none of its cost)."""
        save_checkpoint(unit_dir / "predictor.pt", load_checkpoint(source / "predictor" / "predictor.pt"))
        stored = read_json(source / "predictor" / "result.json")["row"]
        with job.ctx.meter.window("predictor") as w:
            pass
        return {**base_row(job, "predictor", None, None), "acc/test": None, "flops/train_total": 0,
                **{k: v for k, v in stored.items() if k.startswith("predictor/")},
                "predictor/link": m.predictor_link, "predictor/ensemble": m.predictor_ensemble,
                "predictor/bootstrap": m.predictor_bootstrap, "ofa/predictor_from": str(source.resolve()), **w.row()}

    def refit() -> dict:
        """Other predictor settings than the source's: fit them to the source's measured sub-nets (same split)."""
        data = load_checkpoint(source / "predictor" / "predictor.pt")
        with job.ctx.meter.window("predictor") as w:
            row = fit(data["encodings"], data["accs"])
        return {**row, "ofa/predictor_data_from": str(source.resolve()), **w.row()}

    source = Path(m.supernet_from) if m.supernet_from else None
    unit = work
    if source is not None and (source / "predictor" / "result.json").is_file():
        theirs = OmegaConf.to_container(OmegaConf.load(source / "config.yaml"))
        ours = {"seed": job.cfg.seed, "method": {k: getattr(m, k) for k in PREDICTOR_KEYS}}
        unit = reuse if predictor_settings(theirs) == predictor_settings(ours) else refit
    run_unit(unit_dir, job.ctx, unit)
    predictor.load_state_dict(load_checkpoint(unit_dir / "predictor.pt")["model"])
    return predictor


def cost_fns(job: Job, latency: LatencyTable) -> dict[str, Callable[[SubnetConfig], float]]:
    """Every cost a target or a constraint can bound (config_ofa.OFA_COSTS): analytic FLOPs, table latency (ms)."""
    return {"flops": job.table.predict, "latency_ms": lambda c: 1e3 * latency.predict(c)}


def target_limits(job: Job, costs: dict, fraction: float) -> dict[str, float]:
    """`method.constraints` plus `fraction` x the full net's `method.target_metric` (the tighter where both bound)."""
    m = job.cfg.method
    limits = m.constraints.limits()
    target = fraction * costs[m.target_metric](ArchSpace.full(job.spec).largest())
    limits[m.target_metric] = min(limits.get(m.target_metric, target), target)
    return limits


def specialise(job: Job, net: OFASupernet, predictor: PredictorEnsemble, latency: LatencyTable) -> None:
    space, s, costs = ArchSpace.full(job.spec), job.cfg.method.search, cost_fns(job, latency)
    for fraction in job.cfg.method.targets:
        def work(fraction=fraction) -> dict:
            limits = target_limits(job, costs, fraction)
            with job.ctx.meter.window("specialise") as w:
                search = EvolutionSearch(space, predictor.config_fn(space, s.uncertainty_penalty), costs, limits,
                                         population=s.population,
                                         parent_ratio=s.parent_ratio, mutation_ratio=s.mutation_ratio,
                                         mutate_prob=s.mutate_prob, resolution_mutate_prob=s.resolution_mutate_prob,
                                         generations=s.generations, seed=job.cfg.seed)
                cfg, _ = search.run()
                enc = space.encode(cfg)[None]
                predicted, spread = (float(v) for v in predictor.mean_std(enc))
                net.set_active(cfg)
                recalibrate(net, job.recal, cfg.resolution)
                model = export_subnet(net, cfg)
                acc = accuracy(model, job.data.x_test, job.data.y_test, cfg.resolution)
                val = accuracy(model, job.data.x_val, job.data.y_val, cfg.resolution)  # what was predicted
                if distributed.is_main():
                    save_subnet(model, cfg, job.ctx.job_dir / "targets" / f"t{fraction:g}" / "subnet.safetensors")
                row = deployment_costs(model, job.spec, cfg, job.ctx.meter, batch=job.cfg.method.latency_batch,
                                       repeats=job.cfg.method.latency_repeats, table=latency,
                                         device=job.latency_device)
            return {**base_row(job, "ofa_target", cfg, model), "ofa/target_fraction": fraction,
                    "ofa/target_metric": job.cfg.method.target_metric, "ofa/target_flops": limits.get("flops"),
                    "ofa/constraints": ", ".join(f"{k}<={v:.4g}" for k, v in sorted(limits.items())),
                    "acc/test": acc, "acc/val": val, "acc/predicted_val": predicted,
                    "acc/predicted_val_std": spread if job.cfg.method.predictor_ensemble > 1 else None,
                    "search/uncertainty_penalty": s.uncertainty_penalty, "flops/train_total": 0, **row,
                    **w.row()}

        run_unit(job.ctx.job_dir / "targets" / f"t{fraction:g}", job.ctx, work)


def scratch_model(spec, cfg: SubnetConfig, seed: int) -> StaticSubnet:
    """`cfg`'s architecture as a static network with a fresh standard (PyTorch default) initialisation of its own
    layer shapes: a k=3 depthwise conv draws from U(+-1/sqrt(3)), not a crop of a 7-tap init (U(+-1/sqrt(7)))."""
    torch.manual_seed(seed + 1 + int(cfg.key(), 16) % 10_000)
    return StaticSubnet(spec, cfg)


def train_from_scratch(job: Job, unit_dir: Path, kind: str, spec, cfg: SubnetConfig, extra: dict) -> None:
    """A static model of `cfg`'s architecture with a fresh seeded init, trained alone (optim.epochs, or optim.steps
    rounded up to epochs, at optim.lr, after optim.warmup_steps of linear warm-up)."""
    def work() -> dict:
        model = scratch_model(spec, cfg, job.cfg.seed)
        if job.cfg.ddp.sync_bn:
            distributed.convert_sync_bn(model)
        batches = _at(job.batches(), cfg.resolution)
        o = job.cfg.optim  # an epoch budget, or a step budget rounded up to whole epochs
        epochs = o.epochs if o.epochs is not None else -(-o.steps // len(batches))
        warmup = min(o.warmup_steps / len(batches), epochs)
        state, hook = resumable(job, unit_dir, f"{kind}/{unit_dir.name}", [Phase(kind, epochs, o.lr)])
        device_kw, compiled = job.on_device(model, static=True)
        result = train_static(model, batches, epochs=epochs, warmup_epochs=warmup,
                              lr=job.cfg.optim.lr, name=kind, seed=job.cfg.seed, optim=job.optim(),
                              label_smoothing=job.cfg.method.label_smoothing, state=state, on_epoch_end=hook,
                              meter=distributed.summed_meter(job.ctx.meter), flops=TrainFlops(),
                              grad_sync=distributed.sync_step, **device_kw)
        recalibrate(model, job.recal, cfg.resolution)  # the same BN statistics treatment as the OFA sub-nets
        acc = accuracy(model, job.data.x_test, job.data.y_test, cfg.resolution)
        costs = deployment_costs(model, spec, cfg, job.ctx.meter, batch=job.cfg.method.latency_batch,
                                 repeats=job.cfg.method.latency_repeats, device=job.latency_device)
        return {**base_row(job, kind, cfg, model, FlopsTable(spec)), **extra, "acc/test": acc,
                "runtime/compile": compiled,
                "flops/train_total": result["counters"]["flops_train"], **costs, **measured([result]).row()}

    run_unit(unit_dir, job.ctx, work)


def _at(batches: Batches | SourceBatches, resolution: int) -> Batches | SourceBatches:
    """The same batches at `resolution` (a static model runs at one input size)."""
    if isinstance(batches, SourceBatches):
        return SourceBatches(Resized(batches.source, resolution), batches.world_size)
    return Batches(resize_input(batches.x, resolution), batches.y, batches.batch_size, batches.rank,
                   batches.world_size)


BASELINES: Registry = Registry("ofa baseline")  # method.baselines; each trains its models from scratch


@BASELINES.register("scratch_corners")
def scratch_corners(job: Job) -> None:
    for name, cfg in ArchSpace.full(job.spec).corners().items():
        train_from_scratch(job, job.ctx.job_dir / "scratch" / name, "scratch_corner", job.spec, cfg,
                           {"ofa/corner": name})


@BASELINES.register("width_multiplier")
def width_multipliers(job: Job) -> None:
    """One full net per target, narrowed to <= the target's fraction of the full net's `method.target_metric` (for
    latency_ms both are measured here, whole-net, so a table's error cannot favour either side)."""
    cost_at, repeats = WIDTH_COSTS[job.cfg.method.target_metric], job.cfg.method.latency_repeats
    cost = functools.cache(lambda m: cost_at(job.spec, m, repeats, job.latency_timer, job.latency_device))  # m=1
    # serves every target
    full = cost(1.0)
    for fraction in job.cfg.method.targets:
        multiplier, _ = width_multiplier_for(job.spec, fraction * full, cost)
        spec = scaled_spec(job.spec, multiplier)
        train_from_scratch(job, job.ctx.job_dir / "width" / f"t{fraction:g}", "width_multiplier", spec,
                           ArchSpace.full(spec).largest(),
                           {"ofa/target_fraction": fraction, "ofa/width_multiplier": multiplier})


@UNIT_COUNTS.register("ofa")
def unit_count(cfg) -> tuple[int, str]:
    """Supernet, latency table, 8 corners, predictor, one per target, then each baseline's units (as run_ofa)."""
    n_targets = len(cfg.method.targets)
    per_baseline = {"scratch_corners": 8, "width_multiplier": n_targets}
    return 3 + 8 + n_targets + sum(per_baseline[b] for b in cfg.method.baselines), cfg.method.training


@TASKS.register("ofa")
def run_ofa(cfg, ctx: RunContext) -> list[dict]:
    data = load_data(cfg)
    eval_data = None
    if isinstance(data, StreamingSplits):  # train from the loader; recalibrate and evaluate on in-memory subsets
        recal, eval_data = hold_eval_sets(data, cfg.method, cfg.seed)
    else:
        for split in ("train", "val", "test"):
            setattr(data, f"x_{split}", as_channels(getattr(data, f"x_{split}"), cfg.model.dims))
        recal = recalibration_set(data.x_train, cfg.method.bn_recal_samples, cfg.method.bn_recal_batches, cfg.seed)
    spec = cfg.model.spec(in_channels=data.x_train.shape[1], num_classes=data.num_classes)
    ctx.runtime = replace(ctx.runtime, compiles="none")  # rows of training units name what they compiled
    job = Job(cfg, ctx, data, spec, FlopsTable(spec), recal, eval_data)
    net = train_supernet(job)
    latency = latency_table(job, net)
    evaluate_corners(job, net, latency)
    predictor = train_predictor(job, net)
    specialise(job, net, predictor, latency)
    for name in cfg.method.baselines:
        BASELINES.get(name)(job)
    return ctx.rows
