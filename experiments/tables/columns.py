"""The columns of each task's end-of-run table and of the paper tables, in words with units."""

from __future__ import annotations

from experiments.tables.spec import RUN_COLUMNS, Column

ENERGY_METHOD = Column("energy/method", "energy method", note=True)
CARBON_SOURCE = Column("carbon/intensity_source", "carbon intensity source", note=True)

LTH_COLUMNS = [
    Column("lth/level", "level"),
    Column("lth/kind", "kind"),
    Column("lth/percent_remaining", "% weights", "{:.1f}"),
    Column("acc/test", "test acc", "{:.3f}"),
    Column("acc/test_at_early_stop", "acc @ early stop", "{:.3f}"),
    Column("lth/early_stop_step", "early-stop it", "{:.0f}"),
    Column("flops/infer_per_sample", "infer FLOPs (eff.)", "{:.3g}"),
    Column("flops/infer_per_sample_dense", "infer FLOPs (dense)", "{:.3g}"),
    Column("flops/train_total", "train FLOPs", "{:.3g}"),
    Column("energy/joules", "energy J", "{:.3g}"),
    ENERGY_METHOD,
    Column("carbon/g_co2e", "gCO2e", "{:.3g}"),
    Column("time/wall_s", "wall s", "{:.1f}"),
]

MOE_COLUMNS = [
    Column("moe/ffn", "ffn"), Column("moe/d_ff", "d_ff"), Column("moe/num_experts", "E"), Column("moe/top_k", "k"),
    Column("train/steps", "steps"),
    Column("mse/test", "test MSE", "{:.4f}"), Column("bpc/test", "test bpc", "{:.3f}"),
    Column("acc/test", "test acc", "{:.3f}"),
    Column("flops/infer_per_sample", "infer FLOPs", "{:.3g}"), Column("params/total", "params", "{:.3g}"),
    Column("params/active_per_token", "active params", "{:.3g}"), Column("flops/train_total", "train FLOPs", "{:.3g}"),
    Column("energy/joules", "energy J", "{:.3g}"), ENERGY_METHOD,
    Column("carbon/g_co2e", "gCO2e", "{:.3g}"), Column("time/wall_s", "wall s", "{:.1f}"),
]

AF_COLUMNS = [
    Column("af/method", "method"), Column("af/setting", "setting"), Column("acc/test", "acc", "{:.3f}"),
    Column("map/test", "mAP", "{:.3f}"), Column("gflops/mean", "GFLOPs/video", "{:.4f}"),
    Column("gflops/p50", "p50", "{:.4f}"), Column("gflops/p95", "p95", "{:.4f}"),
    Column("gmacs/mean", "GMACs/video", "{:.4f}"), Column("flops/fraction_of_dense", "of dense", "{:.3f}"),
    Column("frames/looked", "frames looked", "{:.1f}"), Column("energy/per_video_j", "J/video", "{:.3g}"),
    ENERGY_METHOD, Column("carbon/g_co2e", "gCO2e (eval)", "{:.3g}"),
]

# A task without registered columns gets the run-record contract's headline keys.
DEFAULT_RUN_COLUMNS = [
    Column("acc/test", "test acc", "{:.3f}"), Column("flops/infer_per_sample", "infer FLOPs", "{:.3g}"),
    Column("flops/train_total", "train FLOPs", "{:.3g}"), Column("energy/joules", "energy J", "{:.3g}"),
    ENERGY_METHOD, Column("carbon/g_co2e", "gCO2e", "{:.3g}"), Column("time/wall_s", "wall s", "{:.1f}"),
]

RUN_COLUMNS.register("lth")(LTH_COLUMNS)
RUN_COLUMNS.register("lth_transfer")([Column("lth/phase", "phase"), *LTH_COLUMNS])
RUN_COLUMNS.register("moe")(MOE_COLUMNS)
RUN_COLUMNS.register("adaptive_frames")(AF_COLUMNS)
