"""Every key a summary.json row may carry, with its meaning: the one place they are documented.

`ROW_KEYS` (every completed row carries them) is checked by `records.write_summary`; the README's record-key
table is `markdown_table()` (tests/test_records.py keeps them equal). In a key, `<i>` and `<name>` stand for
any layer index / name.
"""

from __future__ import annotations

# key -> meaning. Contract keys (ROW_KEYS) first.
RECORD_KEYS: dict[str, str] = {
    "experiment": "the experiment's name (`name` in conf/experiment/*.yaml)",
    "run_id": "hash of the run folder's absolute path",
    "seed": "the run's seed",
    "config_hash": "MD5 of the non-default hyperparameters (defaults, seed, logger, meter, paths excluded)",
    "acc/test": "test accuracy at the end of training (null for regression)",
    "flops/train_total": "FLOPs spent training this unit (forward + backward, counted)",
    "flops/infer_per_sample": "FLOPs of one inference, effective (nonzero weights, routed experts, frames looked at)",
    "flops/infer_per_sample_dense": "the same model run dense",
    "energy/joules": "energy of this unit of work (J)",
    "energy/kwh": "the same in kWh",
    "energy/method": "how energy was obtained: measured:<source> or estimated:<model>, `+`-joined",
    "carbon/g_co2e": "emissions (g CO2e) = kWh x intensity x PUE",
    "carbon/intensity_g_per_kwh": "carbon intensity used (g CO2e / kWh)",
    "carbon/intensity_source": "where the intensity came from",
    "carbon/pue": "data-centre power usage effectiveness applied",
    "time/wall_s": "wall time of this unit (s)",
    "params/total": "parameters, dense",
    "params/nonzero": "parameters that are nonzero",
    "runtime/threads": "torch intra-op threads the unit ran with (config `threads`)",
    "runtime/torch": "torch version",
    "runtime/device": "the torch device the unit ran on (config `device`, resolved: cpu, cuda:N, mps)",
    "runtime/gpu_name": "the CUDA device's name (null off a GPU)",
    "runtime/precision": "fp32, bf16 or fp16 (config `precision`: autocast; fp16 with a GradScaler)",
    "runtime/compile": "what torch.compile compiled: none, model, or the parts a family compiles (OFA)",
    "runtime/world_size": "data-parallel processes (ranks) the run trained on; energy/* is their sum, counted once",
    # metrics (per split: /val, /test; `_at_early_stop`: at the evaluation of minimum validation loss)
    "acc/val": "validation accuracy at the end of training",
    "acc/test_at_early_stop": "test accuracy at the early-stop evaluation",
    "acc/val_at_early_stop": "validation accuracy at the early-stop evaluation",
    "loss/<name>": "loss on split <name> (val, test; nats)",
    "loss/test_at_early_stop": "test loss at the early-stop evaluation",
    "mse/<name>": "mean squared error on split <name> (regression)",
    "mse/test_at_early_stop": "test MSE at the early-stop evaluation",
    "bpc/<name>": "bits per character on split <name> (char LM)",
    "bpc/test_at_early_stop": "test bits per character at the early-stop evaluation",
    "map/test": "test mean average precision (multi-label video; acc/test is null then)",
    "early_stop_step": "step of the early-stop evaluation",
    "curve/val": "validation metrics at every evaluation: [{step, flops_train, <metric>/val}]",
    # cost details
    "flops/eval_total": "FLOPs spent on evaluations",
    "flops/train_total_effective": "LTH: flops/train_total with each masked layer's forward + backward FLOPs "
                                   "scaled by its density (what sparse kernels would need; the same "
                                   "convention as flops/infer_per_sample); flops/train_total is dense",
    "flops/train_total_executed": "MoE: flops/train_total with each step's expert rows as its dispatch executed them "
                                  "(capacity drops, random second expert, padding); flops/train_total is nominal: "
                                  "each batch shape counted once, with the first such batch's routing",
    "energy/train_joules": "energy of the training steps only (the trainer's `train` windows; evaluations carved out, J)",
    "energy/eval_joules": "energy of the periodic and final evaluations (`eval` windows, J); energy/joules = train + eval",
    "time/train_s": "wall time of the training steps only (s)",
    "time/eval_s": "wall time of the evaluations (s); time/wall_s = train + eval",
    "flops/convention": "how FLOPs are counted (1 multiply-add = 2 FLOPs)",
    "flops/train_counted_steps": "integrations' meter callbacks: steps whose FLOPs were counted; flops/train_total = their mean x train/steps",
    "flops/pretrain": "FLOPs of backbone pretraining (adaptive frames)",
    "flops/fraction_of_dense": "flops/infer_per_sample / flops/infer_per_sample_dense",
    "energy/estimated_joules": "part of energy/joules that was estimated",
    "energy/measured_joules": "part of energy/joules that was measured",
    "energy/estimated_components": "which components were estimated",
    "energy/short_window": "true when the window was too short for the meter's resolution",
    "energy/overlapping_jobs": "other metered jobs live on this host during the unit (joblib): each job's energy "
                               "then holds the machine's shared power (socket, idle), so rows must not be summed",
    "energy/per_video_j": "evaluation energy per test video (J)",
    "carbon/intensity_kind": "average or marginal intensity",
    "carbon/eq_km_car": "g CO2e as km driven by an average car (an illustration)",
    "carbon/eq_phone_charges": "g CO2e as smartphone charges (an illustration)",
    "params/active_per_token": "parameters used per token (MoE: k of E experts)",
    "train/steps": "optimizer steps trained",
    "train/joules": "training energy of the learned policy (J)",
    "train/g_co2e": "training emissions of the learned policy (g CO2e)",
    "train/method": "how the training energy was obtained",
    "train/wall_s": "training wall time of the learned policy (s)",
    # lottery tickets
    "lth/level": "IMP level (0 = dense)",
    "lth/kind": "ticket or a baseline: random_reinit, random_prune, one_shot, stability_twin",
    "lth/phase": "source or transfer (ticket transfer)",
    "lth/percent_remaining": "% of prunable weights kept",
    "lth/percent_remaining_all": "% of all weights kept (excluded layers count as kept)",
    "lth/retrain": "retraining mode: weight_rewind, lr_rewind, finetune (dense at level 0)",
    "lth/rewind_step": "the step weights were rewound to",
    "lth/optimizer_state": "optimizer state at retraining: fresh or rewound",
    "lth/replay_data_order": "whether each level replays level 0's data order",
    "lth/early_stop_step": "step of the early-stop evaluation",
    "lth/lmc_barrier": "linear-mode-connectivity error barrier between ticket and twin",
    "lth/lmc_stable": "barrier within the stability tolerance",
    "lth/lmc_max_error": "largest error along the interpolation path",
    # sparse MoE
    "moe/ffn": "feed-forward kind: dense or moe",
    "moe/num_experts": "experts per MoE layer (0 = dense)",
    "moe/top_k": "experts per token (0 = dense)",
    "moe/router": "router name",
    "moe/d_ff": "hidden width of one expert / the dense FFN",
    "final/moe/layer<i>/<name>": "routing statistic of layer <i> at the last step (load, entropy, drops, aux losses)",
    "data/sources": "char LM: the text files and their hashes",
    "data/vocab_size": "char LM: vocabulary size",
    "data/skipped_bad": "streaming data with data.skip_bad=true: unreadable files skipped (distinct files)",
    # adaptive frames
    "af/method": "learned policy or baseline name",
    "af/setting": "the method's setting (budget, lambda, k, threshold)",
    "af/num_test_videos": "test videos evaluated",
    "af/pretrain_source": "trained here or loaded from the backbone cache",
    "frames/<name>": "mean frames per video sent to a backbone / looked at",
    "gflops/<name>": "inference GFLOPs per video (mean, p50, p95, dense)",
    "gmacs/<name>": "inference GMACs per video (mean, p50, p95, dense)",
    "policy_train/<name>": "last policy-training epoch's statistics",
    "policy_train/usage/<name>": "share of decisions per action in the last policy-training epoch",
    # once-for-all
    "ofa/kind": "supernet, latency_table, ofa_corner, predictor, ofa_target, scratch_corner or width_multiplier",
    "ofa/training": "the supernet's schedule: progressive (shrinking), no_ps or sandwich",
    "ofa/subnet": "the sub-net config string (SubnetConfig.parse reads it back)",
    "ofa/supernet_from": "the job folder whose trained supernet this job specialised (method.supernet_from)",
    "ofa/predictor_from": "the job folder whose accuracy predictor this job reused (with method.supernet_from)",
    "ofa/predictor_data_from": "the job folder whose measured sub-nets this job's predictor was fitted to (with "
                               "method.supernet_from and other predictor settings)",
    "ofa/eval_data": "streaming data only: what BN recalibration and sub-net evaluation held in memory (subsets of the "
                     "streamed splits, evaluation transform; method.eval_samples); absent when the data is in memory",
    "ofa/corner": "corner name: depth-expand-kernel each at min or max",
    "ofa/target_fraction": "the target as a fraction of the full net's cost in ofa/target_metric",
    "ofa/target_metric": "what a target bounds: flops (analytic) or latency_ms (batch-1 latency table)",
    "ofa/target_flops": "the FLOPs limit of the search (null when FLOPs were not bounded)",
    "ofa/constraints": "every limit the search ran under, e.g. `flops<=9.3e+05, latency_ms<=2`",
    "ofa/width_multiplier": "width multiplier of the from-scratch baseline",
    "acc/predicted_val": "the accuracy predictor's validation accuracy for the searched sub-net (ensemble mean)",
    "acc/predicted_val_std": "the predictor ensemble's std there (null with one member)",
    "search/uncertainty_penalty": "the search ranked by predicted mean - this x ensemble std (0: the mean)",
    "flops/fraction_of_full": "flops/infer_per_sample / the full supernet's",
    "phase/<name>/epochs": "epochs of training phase <name>",
    "phase/<name>/warmup_steps": "optimizer steps of linear lr warm-up at the start of phase <name> (its "
                                 "warmup_epochs)",
    "phase/<name>/subnet_steps": "sub-net forward/backward passes of phase <name>",
    "phase/<name>/flops_train": "training FLOPs of phase <name>",
    "phase/<name>/joules": "energy of phase <name> (J)",
    "latency/b<i>_ms": "median latency at batch <i> on this machine (ms)",
    "latency/b1_cpu_ms": "median batch-1 latency as CPU time of the thread (ms; no waits for a busy CPU)",
    "latency/b1_table_ms": "the latency table's prediction at batch 1 (ms)",
    "latency/table_timer": "what the table timed: wall or thread_cpu (method.latency_timer)",
    "latency/table_rel_error": "(table - measured with the table's timer) / measured, batch 1",
    "latency/entries": "entries in the latency table",
    "latency/num_threads": "torch intra-op threads latency was measured with",
    "latency/device": "the device latency and energy per inference were measured on (method.latency_device)",
    "infer/joules_per_sample": "energy per inference (J), measured where a source exists",
    "infer/energy_method": "how infer/joules_per_sample was obtained",
    "infer/energy_estimated": "true when infer/joules_per_sample is an estimate",
    "predictor/samples": "recalibrated sub-nets evaluated on the validation split",
    "predictor/held_out": "of those, held out from the predictor's training",
    "predictor/rmse_points": "predictor RMSE on the held-out sub-nets (accuracy points)",
    "predictor/kendall_tau": "Kendall tau between predicted and measured held-out accuracy",
    "predictor/val_acc_mean": "mean validation accuracy of the sampled sub-nets",
    "predictor/val_acc_std": "their standard deviation",
    "predictor/link": "identity (OFA's MLP) or sigmoid (predictions bounded to (0, 1))",
    "predictor/ensemble": "predictor members fitted from successive seeds",
    "predictor/bootstrap": "true when each member fitted a bootstrap resample of the measured sub-nets",
}

ROW_KEYS: tuple[str, ...] = tuple(RECORD_KEYS)[: list(RECORD_KEYS).index("runtime/torch") + 1]


def markdown_table() -> str:
    """The README's record-key table (contract keys marked)."""
    lines = ["| key | meaning |", "|---|---|"]
    for key, meaning in RECORD_KEYS.items():
        lines.append(f"| `{key}`{' *' if key in ROW_KEYS else ''} | {meaning} |")
    return "\n".join(lines)
