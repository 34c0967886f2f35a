"""Adaptive frame selection (AR-Net, Meng et al. ECCV 2020) as a Hydra task: one policy per job, every baseline
beside it on the same backbones, one row per evaluated method/setting.

Stages, each resumable at epoch boundaries from `<job>/checkpoint.pt`:
  pretrain/<i>  backbone i on all frames at resolution i        (Adam, optim.lr, optim.batch_size)
  pretrain/policy  policy encoder + classification head on the policy's low-res frames (only with
                model.policy_as_backbone: the policy-head action; same optimiser settings, not cached)
  policy        joint ST Gumbel training on frozen backbones     (method.policy_lr; per-frame logits precomputed)
  finetune      backbones on the frames the frozen policy sends  (optional, method.finetune_epochs)
Pretrained backbones are cached across jobs (`<output_root>/cache/af_backbones/<key>.pt`, keyed by everything
that determines them), so a sweep over lam/budget pretrains once per seed; a row says which it was.

Each row's energy/* and time/* are the *evaluation* window of that method over the test set (inference energy,
what the efficiency claim is about), with `energy/per_video_j` beside it; the learned row also carries the
training window as `train/*`. FLOPs per video are counted at run time (FLOPs = 2 x MAC; GMACs beside them);
training FLOPs are counted per stage step (forward + backward, meter.flops) times the steps run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from adaptive_frames import (
    AdaptiveFrameModel,
    BudgetController,
    ModelConfig,
    build_baseline,
    mean_average_precision,
)
from adaptive_frames.data.frames import FrameFolderDataset
from adaptive_frames.data.loader import ClipLoader
from adaptive_frames.data.needle import NeedleConfig, make_needle_splits
from adaptive_frames.data.video import VideoFileDataset
from adaptive_frames.inference import FRAMES_PER_CALL, resize
from adaptive_frames.metrics import accuracy
from adaptive_frames.policy import PolicyConfig
from adaptive_frames.stages import (
    PolicyTrainConfig,
    evaluate,
    finetune,
    policy_head_logits,
    precompute,
    pretrain_backbone,
    pretrain_policy_head,
    train_policy,
)
from experiments import debug, distributed
from experiments.checkpoint import (
    exists,
    load_checkpoint,
    load_latest,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from experiments.context import RunContext
from experiments.preemption import Preempted
from experiments.records import atomic_write_json, read_json
from experiments.schema import ConfigError
from experiments.tasks.registry import TASKS
from experiments.trainer import carbon_gate
from lth.registry import Registry
from meter import Measurement
from meter.flops import count_flops

log = logging.getLogger(__name__)
AF_DATA: Registry = Registry("adaptive_frames dataset")
FLOPS_CONVENTION = "2*MAC (torch FlopCounterMode); inference per video, counted at run time"


@dataclasses.dataclass
class VideoData:
    """clips [N, T, C, H, W] float32; labels [N] int64 or multi-hot [N, K]; informative [N, T] bool or None."""

    train_clips: torch.Tensor
    train_labels: torch.Tensor
    test_clips: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    channels: int
    multilabel: bool = False
    test_informative: torch.Tensor | None = None  # ground truth needles (the oracle baseline), synthetic data only

    @property
    def num_frames(self) -> int:
        return self.train_clips.shape[1]


@AF_DATA.register("needle")
def needle(cfg) -> VideoData:
    fields = {f.name: getattr(cfg.data, f.name) for f in dataclasses.fields(NeedleConfig)}
    fields["seed"] = cfg.seed if cfg.data.seed is None else cfg.data.seed
    ncfg = NeedleConfig(**fields)
    train, test = make_needle_splits(ncfg)
    return VideoData(train.clips, train.labels, test.clips, test.labels, ncfg.num_classes, ncfg.channels,
                     test_informative=test.informative)


def _materialise(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[i] for i in range(len(dataset))]
    if not items:
        raise ValueError(f"{type(dataset).__name__}: the list file names no video")
    return torch.stack([c for c, _, _ in items]), torch.stack([y for _, y, _ in items])


def _video_list(cfg, dataset_cls, **extra) -> VideoData:
    d = cfg.data
    for key in ("root", "train_list", "test_list"):
        if not Path(getattr(d, key)).exists():
            raise ConfigError(f"data.{key}={getattr(d, key)!r} does not exist")
    kwargs = dict(num_segments=d.num_segments, size=d.size, num_classes=d.num_classes if d.multilabel else None,
                  seed=cfg.seed, **extra)
    train = _materialise(dataset_cls(d.root, d.train_list, train=True, **kwargs))
    test = _materialise(dataset_cls(d.root, d.test_list, train=False, **kwargs))
    if train[0].shape[2] != d.channels:
        raise ValueError(f"data.channels={d.channels} but the decoded frames have {train[0].shape[2]} channels")
    return VideoData(*train, *test, num_classes=d.num_classes, channels=d.channels, multilabel=d.multilabel)


@AF_DATA.register("frame_folders")
def frame_folders(cfg) -> VideoData:
    mode = "RGB" if cfg.data.channels == 3 else "L"
    return _video_list(cfg, FrameFolderDataset, template=cfg.data.template, index_base=cfg.data.index_base, mode=mode)


@AF_DATA.register("video_files")
def video_files(cfg) -> VideoData:
    if cfg.data.channels != 3:
        raise ConfigError("data.channels must be 3 for data.name=video_files (PyAV decodes RGB)")
    return _video_list(cfg, VideoFileDataset)


def build_af_model(cfg, data: VideoData) -> AdaptiveFrameModel:
    m = cfg.model
    policy = PolicyConfig(**{f.name: getattr(m.policy, f.name) for f in dataclasses.fields(PolicyConfig)})
    return AdaptiveFrameModel(ModelConfig(
        num_classes=data.num_classes, in_channels=data.channels, backbone=m.backbone,
        backbone_width_mult=m.backbone_width_mult, resolutions=list(m.resolutions), skips=list(m.skips),
        policy=policy, policy_as_backbone=m.policy_as_backbone))


def backbone_cache_key(cfg) -> str:
    """Everything that determines the pretrained backbones (not the policy, lam, budget or baselines)."""
    model = {k: v for k, v in dataclasses.asdict(cfg.model).items() if k not in ("policy", "policy_as_backbone")}
    key = {"data": dataclasses.asdict(cfg.data), "model": model, "pretrain_epochs": cfg.method.pretrain_epochs,
           "optim": {"lr": cfg.optim.lr, "batch_size": cfg.optim.batch_size}, "seed": cfg.seed,
           "torch": torch.__version__}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


class StageRunner:
    """Runs stage epochs in order, checkpointing after each one; on resume, skips what is done."""

    def __init__(self, ctx: RunContext, model: AdaptiveFrameModel) -> None:
        self.ctx, self.model = ctx, model
        self.path = ctx.job_dir / "checkpoint.pt"
        self.state = {"done": [], "stage": None, "epoch": 0, "optimizer": None, "lam": None, "history": {},
                      "measurement": None}  # energy/time of the training done so far, across restarts
        if exists(self.path):
            saved = load_latest(self.path)
            model.load_state_dict(saved["model"])
            set_rng_state(saved["rng"])
            self.state = {k: saved[k] for k in self.state}
            log.info("adaptive_frames: resuming at stage %s epoch %d", self.state["stage"], self.state["epoch"])
        self.epochs_run = 0

    @contextlib.contextmanager
    def measure(self):
        """A meter window whose measurement is added to the checkpointed training total."""
        with self.ctx.meter.window("train") as window:
            yield
        before = self.state["measurement"]
        self.state["measurement"] = window.to_dict() if before is None else (
            Measurement.from_dict(before) + window).to_dict()

    @property
    def measurement(self) -> Measurement | None:
        m = self.state["measurement"]
        return None if m is None else Measurement.from_dict(m)

    def done(self, stage: str) -> bool:
        return stage in self.state["done"]

    def run(self, stage: str, epochs: int, params, lr: float, one_epoch, budget: BudgetController | None = None):
        """one_epoch(optimizer, epoch, budget) -> history row. Returns the stage's history."""
        if self.done(stage):
            return self.state["history"].get(stage, [])
        optimizer = torch.optim.Adam(params, lr=lr)
        start = 0
        if self.state["stage"] == stage:
            start = self.state["epoch"]
            optimizer.load_state_dict(self.state["optimizer"])
            if budget is not None and self.state["lam"] is not None:
                budget.lam = self.state["lam"]
        history = self.state["history"].setdefault(stage, [])
        for epoch in range(start, epochs):
            carbon_gate(self.ctx.carbon_plan, self.epochs_run, stage)
            with self.measure():
                row = one_epoch(optimizer, epoch, budget)
            history.append(row)
            self.ctx.logger.log({"unit": stage, **row}, None)
            self.epochs_run += 1
            self.state.update(stage=stage, epoch=epoch + 1, optimizer=optimizer.state_dict(),
                              lam=budget.lam if budget is not None else None)
            self._save()
            if self.ctx.preemption.requested:
                raise Preempted(self.ctx.preemption.signum, self.epochs_run)
        self.state["done"].append(stage)
        self.state.update(stage=None, epoch=0, optimizer=None, lam=None)
        self._save()
        return history

    def _save(self) -> None:
        if distributed.is_main():
            save_checkpoint(self.path, {"model": self.model.state_dict(), "rng": rng_state(), **self.state})


class _Call(nn.Module):
    """A closure over `model` as a module, so meter.flops can count a stage's step (forward and backward)."""

    def __init__(self, model: nn.Module, fn) -> None:
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, *inputs):
        return self.fn(self.model, *inputs)


def epoch_flops(module: nn.Module, inputs: tuple[torch.Tensor, ...], labels: torch.Tensor, batch: int,
                loss_fn) -> int:
    """Counted forward + backward FLOPs of one pass over `inputs` [N, ...] in batches of `batch` (the last one
    short): one step counted per batch shape on a copy (meter.flops.count_flops), times the number of steps."""
    n, total = len(labels), 0
    for b, steps in ((batch, n // batch), (n % batch, 1)):
        if b and steps:
            count = count_flops(module, tuple(x[:b] for x in inputs), lambda out, b=b: loss_fn(out, labels[:b]))
            total += steps * count.total
    return total


def _loss_and_metric(data: VideoData):
    if data.multilabel:
        return F.binary_cross_entropy_with_logits, lambda s, y: mean_average_precision(s, y)
    return F.cross_entropy, accuracy


def _stage_epoch(fn, loader: ClipLoader, **kwargs):
    """Adapt a stage function (which loops over epochs) to one epoch with a reproducible data order."""
    def one_epoch(optimizer, epoch, budget):
        loader.passes = epoch  # ClipLoader's order depends on (seed, pass): resume reproduces it
        extra = {"budget": budget} if budget is not None else {}
        return fn(loader=loader, optimizer=optimizer, start_epoch=epoch, epochs=epoch + 1, **kwargs, **extra)[-1]
    return one_epoch


def _pretrain_policy_head(cfg, runner: StageRunner, model: AdaptiveFrameModel, data: VideoData, loss_fn) -> int:
    """Stage pretrain/policy (model.policy_as_backbone only): the policy encoder + classification head as a frame
    classifier. Returns its counted training FLOPs (forward + backward per step, times the steps)."""
    x, y, bs, epochs = data.train_clips, data.train_labels, cfg.optim.batch_size, cfg.method.pretrain_epochs
    loader = ClipLoader(x, y, bs, shuffle=True, seed=cfg.seed * 7 + 1 + model.space.num_resolutions)
    fn = _stage_epoch(lambda **kw: pretrain_policy_head(model, loss_fn=loss_fn, **kw), loader)
    params = [*model.policy.encoder.parameters(), *model.policy.classifier.parameters()]
    runner.run("pretrain/policy", epochs, params, cfg.optim.lr, fn)
    return epochs * epoch_flops(_Call(model, policy_head_logits), (x,), y, bs, loss_fn)


def train(cfg, ctx: RunContext, model: AdaptiveFrameModel, data: VideoData) -> dict:
    """All stages. Returns pretrain_source (trained | cache:<key>), counted FLOPs of pretraining and of the
    policy/fine-tune stages (the recipe's compute, whether or not this job ran the cached part), history.
    flops_pretrain is the backbones' pretraining (what every baseline needs too); pretrain/policy, which only
    the learned policy needs, counts towards flops_train only."""
    m, n, t = cfg.method, len(data.train_clips), data.num_frames
    x, y, bs = data.train_clips, data.train_labels, cfg.optim.batch_size
    loss_fn, _ = _loss_and_metric(data)
    runner = StageRunner(ctx, model)
    cache = Path(cfg.paths["output_root"]) / "cache" / "af_backbones" / f"{backbone_cache_key(cfg)}.pt"
    pretrain_stages = [f"pretrain/{i}" for i in range(model.space.num_resolutions)]
    source = "trained"
    if m.backbone_cache and cache.exists() and not any(runner.done(s) or runner.state["stage"] == s
                                                       for s in pretrain_stages):
        model.backbones.load_state_dict(load_checkpoint(cache)["backbones"])
        runner.state["done"].extend(pretrain_stages)
        source = f"cache:{cache.stem}"
        log.info("adaptive_frames: backbones from %s", cache)
    flops_pretrain = 0
    for i, res in enumerate(model.space.resolutions):
        loader = ClipLoader(x, y, bs, shuffle=True, seed=cfg.seed * 7 + 1 + i)
        fn = _stage_epoch(lambda bb=model.backbones[i], r=res, **kw: pretrain_backbone(bb, r, loss_fn=loss_fn, **kw),
                          loader)
        runner.run(pretrain_stages[i], m.pretrain_epochs, model.backbones[i].parameters(), cfg.optim.lr, fn)
        step = _Call(model.backbones[i], lambda bb, c, r=res: bb(resize(c.flatten(0, 1), r)).view(*c.shape[:2], -1)
                     .mean(dim=1))
        flops_pretrain += m.pretrain_epochs * epoch_flops(step, (x,), y, bs, loss_fn)
    if source == "trained" and m.backbone_cache and distributed.is_main() and not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(cache, {"backbones": model.backbones.state_dict()})

    with runner.measure():
        cached = precompute(model, x, batch_size=max(1, FRAMES_PER_CALL // t))  # frozen backbones: once
    flops = n * t * sum(model.costs().backbone)  # precompute: every backbone on every frame, forward only
    if model.space.policy_head:
        flops += _pretrain_policy_head(cfg, runner, model, data, loss_fn)
    pcfg = PolicyTrainConfig(epochs=m.policy_epochs, tau0=m.tau0, gamma=m.gamma, lam=m.lam, balance=m.balance,
                             budget_gflops=m.budget_gflops, budget_lr=m.budget_lr)
    budget = (BudgetController(target_flops=m.budget_gflops * 1e9, lam=m.lam, lr=m.budget_lr)
              if m.budget_gflops > 0 else None)
    loader = ClipLoader(x, y, bs, shuffle=True, seed=cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)

    def policy_epoch(optimizer, epoch, budget):
        loader.passes = epoch
        gen.manual_seed(cfg.seed * 100_003 + epoch)  # Gumbel noise reproducible per epoch (resume)
        return train_policy(model, loader, optimizer, dataclasses.replace(pcfg, epochs=epoch + 1), loss_fn=loss_fn,
                            cache=cached, budget=budget, start_epoch=epoch, generator=gen)[-1]

    runner.run("policy", m.policy_epochs, model.policy.parameters(), m.policy_lr, policy_epoch, budget)
    # Counted with argmax decisions (the Gumbel noise is elementwise: same matmuls, and no global RNG consumed).
    step = _Call(model, lambda mod, c, fl, low: mod.forward_train(c, 1.0, frame_logits=fl, low=low,
                                                                  deterministic=True).logits)
    flops += m.policy_epochs * epoch_flops(step, (x, cached["frame_logits"], cached["low"]), y, bs, loss_fn)
    if m.finetune_epochs > 0:
        loader = ClipLoader(x, y, bs, shuffle=True, seed=cfg.seed + 1)
        fn = _stage_epoch(lambda **kw: finetune(model, loss_fn=loss_fn, **kw), loader)
        runner.run("finetune", m.finetune_epochs, model.backbones.parameters(), cfg.optim.lr, fn)
        step = _Call(model, lambda mod, c: mod.forward_train(c, 1.0, deterministic=True).logits)
        flops += m.finetune_epochs * epoch_flops(step, (x,), y, bs, loss_fn)
    return {"pretrain_source": source, "flops_pretrain": flops_pretrain, "flops_train": flops_pretrain + flops,
            "history": runner.state["history"], "measurement": runner.measurement}


# Each baseline's settings: name -> (cfg, model, data, learned metrics) -> [(setting, run(clips, index))].
BASELINE_SETTINGS: Registry = Registry("adaptive_frames baseline")


@BASELINE_SETTINGS.register("dense_top")
def _dense_top(cfg, model, data, learned):
    f = build_baseline("dense_top", model)
    return [(f"T={data.num_frames}@{model.space.resolutions[0]}", lambda x, idx: f(x))]


@BASELINE_SETTINGS.register("oracle")
def _oracle(cfg, model, data, learned):
    if data.test_informative is None:
        log.info("adaptive_frames: no ground-truth informative frames for this data; oracle skipped")
        return []
    f, inf = build_baseline("oracle", model), data.test_informative
    return [(f"needles@{model.space.resolutions[0]}", lambda x, idx: f(x, inf[idx]))]


@BASELINE_SETTINGS.register("uniform")
def _uniform(cfg, model, data, learned):
    return [(f"k={k}@{res}", lambda x, idx, f=build_baseline("uniform", model, k=k, res_index=ri): f(x))
            for ri, res in enumerate(model.space.resolutions)
            for k in sorted({min(k, data.num_frames) for k in cfg.method.uniform_k})]


@BASELINE_SETTINGS.register("frame_exit")
def _frame_exit(cfg, model, data, learned):
    return [(f"thr={th}@{model.space.resolutions[0]}", lambda x, idx, f=build_baseline("frame_exit", model,
                                                                                        threshold=th): f(x))
            for th in cfg.method.frame_exit_thresholds]


@BASELINE_SETTINGS.register("random")
def _random(cfg, model, data, learned):
    """Frames drawn at random at the learned policy's mean GFLOPs, all spent on the top backbone."""
    p = min(1.0, learned["gflops/mean"] * 1e9 / (data.num_frames * model.costs().top))
    probs = (p,) + (0.0,) * (model.space.num_resolutions - 1)
    f = build_baseline("random", model, probs=probs, seed=cfg.seed)
    return [(f"matched {_learned_setting(cfg)}@{model.space.resolutions[0]}", lambda x, idx: f(x))]


def evaluate_methods(cfg, ctx: RunContext, model: AdaptiveFrameModel, data: VideoData):
    """[(method, setting, metrics, measurement)] for the learned policy and each configured baseline, each in its
    own meter window over the whole test set."""
    _, metric = _loss_and_metric(data)
    loader = ClipLoader(data.test_clips, data.test_labels, cfg.method.eval_batch_size, shuffle=False)
    dense = model.dense_flops(data.num_frames)
    out = []

    def run(method: str, setting: str, fn) -> dict:
        with ctx.meter.window(f"eval_{method}") as window:
            metrics = evaluate(fn, loader, dense, metric=metric)
        out.append((method, setting, metrics, window))
        return metrics

    learned = run("learned", _learned_setting(cfg), lambda x, idx: model.infer(x))
    for name in cfg.method.baselines:
        for setting, fn in BASELINE_SETTINGS.get(name)(cfg, model, data, learned):
            run(name, setting, fn)
    return out


def _learned_setting(cfg) -> str:
    m = cfg.method
    base = f"budget={m.budget_gflops}" if m.budget_gflops > 0 else f"lam={m.lam}"
    return base + (f",balance={m.balance}" if m.balance > 0 else "") + (
        f",finetune={m.finetune_epochs}" if m.finetune_epochs > 0 else "")


@TASKS.register("adaptive_frames")
def run_adaptive_frames(cfg, ctx: RunContext) -> list[dict]:
    if (ctx.job_dir / "result.json").exists():  # finished before: a rerun in the same folder skips it
        return [ctx.add_row(r) for r in read_json(ctx.job_dir / "result.json")["rows"]]
    data = debug.overfit(cfg, AF_DATA.get(cfg.data.name)(cfg))
    torch.manual_seed(cfg.seed)
    model = build_af_model(cfg, data)
    trained = train(cfg, ctx, model, data)
    train_window = trained["measurement"]
    results = evaluate_methods(cfg, ctx, model, data)
    params = sum(p.numel() for p in model.parameters())
    n_test = len(data.test_clips)
    dense = model.dense_flops(data.num_frames)
    rows = []
    for method, setting, metrics, window in results:
        row = {
            "af/method": method, "af/setting": setting,
            "acc/test": metrics["metric"] if not data.multilabel else None,
            "map/test": metrics["metric"] if data.multilabel else None,
            # the learned policy needs every stage; a baseline only the pretrained backbones it runs
            "flops/train_total": trained["flops_train"] if method == "learned" else trained["flops_pretrain"],
            "flops/pretrain": trained["flops_pretrain"],
            "flops/infer_per_sample": metrics["gflops/mean"] * 1e9,
            "flops/infer_per_sample_dense": float(dense),
            "flops/convention": FLOPS_CONVENTION,
            **{k: v for k, v in metrics.items() if k != "metric"},
            "params/total": params, "params/nonzero": params,
            "af/pretrain_source": trained["pretrain_source"],
            "af/num_test_videos": n_test,
            **window.row(),
            "energy/per_video_j": window.joules / n_test,
        }
        if method == "learned":
            row.update({f"train/{k.split('/', 1)[1]}": v for k, v in train_window.row().items()
                        if k in ("energy/joules", "energy/method", "carbon/g_co2e", "time/wall_s")})
            last = trained["history"].get("policy", [{}])[-1] if trained["history"].get("policy") else {}
            row.update({f"policy_train/{k}": v for k, v in last.items() if isinstance(v, (int, float))})
        rows.append(ctx.add_row(row))
        ctx.logger.log({k: v for k, v in row.items() if isinstance(v, (int, float))}, None)
    if distributed.is_main():
        atomic_write_json(ctx.job_dir / "result.json", {"rows": [{k: v for k, v in r.items()} for r in rows]})
        for leftover in ("checkpoint.pt", "checkpoint.pt.prev"):
            (ctx.job_dir / leftover).unlink(missing_ok=True)
    return rows

