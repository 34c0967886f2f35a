"""Sparse mixture-of-experts experiments: one model trained per job, one row.

`data.name` picks the task: `clustered_regression` (16 Gaussian clusters, each its own teacher: where sparse
activation should win) or `chars` (character-level language modelling on a local text file, or the standard
library's sources by default). Sweeps compare MoE models with dense models of equal active FLOPs and of equal
total parameters (conf/sweep/moe_*.yaml).
"""

from __future__ import annotations

import dataclasses
import logging

import torch

from experiments import debug, distributed
from experiments.context import RunContext
from experiments.data import Splits
from experiments.objectives import OBJECTIVES, Objective, _split_output
from experiments.tasks.registry import TASKS
from experiments.token_data import TokenSplits, load_tokens
from experiments.trainer import FitSpec, energy_row, fit, iterations_per_epoch
from experiments.units import run_unit
from meter.flops import CONVENTION, param_counts
from meter.registry import Registry
from sparse_moe import MoELayer, aux_stats, layer_flops, step_routers, sync_router_stats
from sparse_moe.data import ClusteredRegressionConfig, load_char_corpus, make_clustered_regression
from sparse_moe.models import build_model

log = logging.getLogger(__name__)
MOE_DATA: Registry = Registry("moe dataset")


@MOE_DATA.register("clustered_regression")
def clustered(cfg) -> tuple[Splits, str, dict]:
    gen_args = {f.name: getattr(cfg.data, f.name) for f in dataclasses.fields(cfg.data)
                if f.name not in ("name", "val_fraction")}
    d = make_clustered_regression(ClusteredRegressionConfig(**gen_args))
    n_val = int(round(cfg.data.val_fraction * len(d.x_train)))
    splits = Splits(d.x_train[n_val:], d.y_train[n_val:], d.x_train[:n_val], d.y_train[:n_val], d.x_test, d.y_test)
    return splits, "regression", {}


@MOE_DATA.register("chars")
def chars(cfg) -> tuple[Splits, str, dict]:
    """Non-overlapping windows of block_size + 1 characters; validation and test split the held-out tail."""
    corpus = load_char_corpus(cfg.data.path, cfg.data.val_fraction)
    block = cfg.model.block_size

    def windows(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = (len(ids) - 1) // block
        if n < 1:
            raise ValueError(f"text split of {len(ids)} chars is shorter than model.block_size={block}")
        x = ids[: n * block].view(n, block)
        return x, ids[1 : n * block + 1].view(n, block)

    train = corpus.split("train")
    if cfg.data.max_chars is not None:
        train = train[: cfg.data.max_chars]
    held = corpus.split("val")
    x_tr, y_tr = windows(train)
    x_va, y_va = windows(held[: len(held) // 2])
    x_te, y_te = windows(held[len(held) // 2 :])
    info = {"data/sources": ";".join(f"{p}:{h[:12]}" for p, h in corpus.sources), "data/vocab_size": corpus.vocab_size}
    return Splits(x_tr, y_tr, x_va, y_va, x_te, y_te, {"vocab_size": corpus.vocab_size}), "language_model", info


@MOE_DATA.register("tokens")
def tokens(cfg) -> tuple[TokenSplits, str, dict]:
    """A nanoGPT token folder streamed from memmaps (experiments.token_data): random windows, nothing loaded."""
    data = load_tokens(cfg)
    return data, "language_model", {"data/vocab_size": data.meta["vocab_size"]}


class MoEObjective(Objective):
    """Wraps a task objective: adds each layer's weighted router losses, steps aux-loss-free routers after each
    optimizer step, and keeps the last step's per-layer routing statistics for logging. Under data parallelism
    the router statistics are the global batch's (`sync_router_stats`), so N ranks train what one process does."""

    def __init__(self, inner: Objective) -> None:
        super().__init__()
        self.inner = inner
        self.early_stop_metrics = inner.early_stop_metrics
        self.last_stats: dict[str, float] = {}
        self.last_expert_flops = 0  # forward FLOPs of the expert rows the last training forward executed
        self._synced = None

    def loss_fn(self, prediction, target):
        return self.inner.loss_fn(prediction, target)

    def batch_metrics(self, prediction, target):
        return self.inner.batch_metrics(prediction, target)

    def loss(self, model, xb, yb):
        if self._synced is not model:  # once per (DDP-wrapped) model: a module walk, not per step
            sync_router_stats(model, distributed.world()[1] > 1)
            self._synced = model
        prediction, auxes = _split_output(model(xb))
        self.last_stats = aux_stats(auxes)
        self.last_expert_flops = _expert_flops(auxes)
        return self.loss_fn(prediction, yb) + self.aux_loss(auxes)

    def _step_count(self, model, xb, yb, cache):
        loss = lambda out: self.loss_fn(_split_output(out)[0], yb)  # noqa: E731
        return cache.get("train", model, (xb,), loss, observe=lambda out: _expert_flops(_split_output(out)[1]))

    def step_flops(self, model, xb, yb, cache) -> int:
        """Nominal: the step counted once per batch shape (its routing is the first batch's)."""
        return self._step_count(model, xb, yb, cache).total

    def executed_step_flops(self, model, xb, yb, cache) -> int:
        """The nominal count with its expert rows replaced by the rows this step's dispatch executed (capacity
        drops, a random second expert, padding): forward + backward (grad input, grad weight) = 3x forward."""
        count = self._step_count(model, xb, yb, cache)
        return count.total + 3 * (self.last_expert_flops - count.observed)

    def after_step(self, model) -> None:
        step_routers(model)

    def step_logs(self) -> dict[str, float]:
        return self.last_stats


def _expert_flops(auxes) -> int:
    return sum(a.executed_flops for a in auxes)


def dense_bound_flops(model, example: torch.Tensor) -> int:
    """Extra forward FLOPs if every expert ran on every token (the dense bound of routed FLOPs)."""
    layers = [m for m in model.modules() if isinstance(m, MoELayer)]
    captured = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: captured.append((mod, out[1]))) for m in layers]
    try:
        with torch.no_grad():
            model.eval()
            model(example)
            model.train()
    finally:
        for h in hooks:
            h.remove()
    return sum(layer_flops(m, aux).experts_dense - layer_flops(m, aux).experts_executed for m, aux in captured)


@TASKS.register("moe")
def run_moe(cfg, ctx: RunContext) -> list[dict]:
    """One model per job: its row, stored in `<job>/result.json` (a rerun in the same folder returns it)."""
    return [run_unit(ctx.job_dir, ctx, lambda: train_moe(cfg, ctx))]


def train_moe(cfg, ctx: RunContext) -> dict:
    data, objective_name, info = MOE_DATA.get(cfg.data.name)(cfg)
    data = debug.overfit(cfg, data)
    model_cfg = cfg.model
    if cfg.data.name in ("chars", "tokens"):
        model_cfg = dataclasses.replace(model_cfg, vocab_size=data.meta["vocab_size"])  # set by the corpus
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model.name, model_cfg)
    objective = MoEObjective(OBJECTIVES.get(objective_name)())
    spe = iterations_per_epoch(len(data.x_train), cfg.optim.batch_size)
    total = cfg.optim.steps if cfg.optim.steps is not None else cfg.optim.epochs * spe
    result = fit(model, data, cfg.optim, FitSpec(total_steps=total, seed=cfg.seed, tag=cfg.name,
                                                 checkpoint_path=ctx.job_dir / "checkpoint.pt", objective=objective), ctx)
    example = data.x_test[:1]
    executed = objective.infer_flops(model, example, ctx.flop_cache)
    total_params, nonzero = param_counts(model)
    experts = [m for m in model.modules() if isinstance(m, MoELayer)]
    moe = model_cfg.moe
    expert_params = sum(p.numel() for m in experts for p in m.experts.parameters())
    idle_share = 1 - moe.top_k / moe.num_experts if experts else 0.0  # token choice: k of E experts run per token
    row = {
        "moe/ffn": model_cfg.ffn, "moe/num_experts": moe.num_experts if experts else 0,
        "moe/top_k": moe.top_k if experts else 0, "moe/router": moe.router if experts else "none",
        "moe/d_ff": model_cfg.d_ff, "train/steps": total,
        **{k: v for k, v in result.metrics.items() if k != "step"},
        **{f"{k}_at_early_stop": v for k, v in result.early_stop.at_best.items() if k.endswith("/test")},
        "early_stop_step": result.early_stop.best_step,
        # Validation metrics at every evaluation against training FLOPs counted so far (the scaling curve).
        "curve/val": [{"step": h["step"], "flops_train": h["flops_train"],
                       **{k: v for k, v in h.items() if k.endswith("/val")}} for h in result.history],
        "flops/train_total": result.flops_train, "flops/train_total_executed": result.flops_train_executed,
        "flops/eval_total": result.flops_eval,
        "flops/infer_per_sample": executed, "flops/infer_per_sample_dense": executed + dense_bound_flops(model, example),
        "flops/convention": CONVENTION, "params/total": total_params, "params/nonzero": nonzero,
        "params/active_per_token": total_params - expert_params * idle_share,
        **{f"final/{k}": v for k, v in objective.last_stats.items()},
        **info,
        **energy_row(result),
    }
    if "acc/test" not in row:  # regression: the row contract's main metric is the task metric
        row["acc/test"] = None
    return row
