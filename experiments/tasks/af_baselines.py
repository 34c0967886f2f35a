"""Evaluation of the adaptive-frames task: the learned policy and every configured baseline over the test set,
each in its own meter window. `BASELINE_SETTINGS` is the one list of baseline names (`method.baselines` is
validated against it); each entry expands into the settings it is evaluated at."""

from __future__ import annotations

import logging

from adaptive_frames import AdaptiveFrameModel, build_baseline
from adaptive_frames.stages import evaluate
from experiments.context import RunContext
from experiments.tasks.af_data import VideoData
from experiments.tasks.af_stream import test_loader
from meter.registry import Registry

log = logging.getLogger(__name__)

# name -> (cfg, model, data, learned metrics) -> [(setting, run(clips, index))].
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
    return [(f"matched {learned_setting(cfg)}@{model.space.resolutions[0]}", lambda x, idx: f(x))]


def learned_setting(cfg) -> str:
    m = cfg.method
    base = f"budget={m.budget_gflops}" if m.budget_gflops > 0 else f"lam={m.lam}"
    return base + (f",balance={m.balance}" if m.balance > 0 else "") + (
        f",finetune={m.finetune_epochs}" if m.finetune_epochs > 0 else "")


def evaluate_methods(cfg, ctx: RunContext, model: AdaptiveFrameModel, data: VideoData):
    """[(method, setting, metrics, measurement)] for the learned policy and each configured baseline, each in its
    own meter window over the whole test set."""
    _, metric = data.loss_and_metric()
    loader = test_loader(data, cfg.method.eval_batch_size)
    dense = model.dense_flops(data.num_frames)
    out = []

    def run(method: str, setting: str, fn) -> dict:
        with ctx.meter.window(f"eval_{method}") as window:
            metrics = evaluate(fn, loader, dense, metric=metric)
        out.append((method, setting, metrics, window))
        return metrics

    learned = run("learned", learned_setting(cfg), lambda x, idx: model.infer(x))
    for name in cfg.method.baselines:
        for setting, fn in BASELINE_SETTINGS.get(name)(cfg, model, data, learned):
            run(name, setting, fn)
    return out
