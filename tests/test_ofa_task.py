"""The once-for-all task through the runner: config errors at compose time, one row per unit with the contract
keys, searched sub-nets within their budgets, exported files that reproduce the rows, and exact resume."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

import experiments.run as runner
import experiments.tasks.ofa as ofa_task
from experiments.config import ConfigError, validate
from experiments.errors import InputError
from experiments.inputs import check_inputs
from experiments.loggers import LocalLogger
from experiments.records import ROW_KEYS, undocumented_keys
from experiments.tasks.lth import load_data
from experiments.tasks.ofa_eval import accuracy, as_channels, width_multiplier_for
from once_for_all import SubnetConfig
from once_for_all.export import load_subnet
from tests.helpers import ROOT, compose

pytestmark = pytest.mark.usefixtures("one_thread")

# Seconds-long: tiny data, one epoch per phase, a handful of predictor samples, a short search.
TINY = ["experiment=ofa_mnist1d", "progress=false", "data.num_samples=500", "optim.batch_size=50", "optim.epochs=1",
        "model.stage_widths=[8,12]", "model.stage_strides=[1,2]", "model.stage_se=[false,true]",
        "model.head_channels=16", "model.stem_channels=8", "model.resolutions=[36,40]", "method.predictor_samples=12",
        "method.predictor_epochs=20", "method.bn_recal_samples=100", "method.bn_recal_batches=2",
        "method.search.population=8", "method.search.generations=2", "method.targets=[0.5,1.0]",
        "method.latency_repeats=3", "method.latency_batch=4"]
ONE_EPOCH = [f"method.phases.{i}.epochs=1" for i in range(6)]


def rows_by_kind(rows):
    out = {}
    for r in rows:
        out.setdefault(r["ofa/kind"], []).append(r)
    return out


@pytest.mark.parametrize("override, key", [
    ("method.phases.1.kernel_sizes=[3,9]", "method.phases[1]"),  # kernel larger than k_max
    ("method.phases.4.expand_ratios=[2,6]", "method.phases[4]"),  # expand ratio not in the set
    ("method.targets=[]", "method.targets"),
    ("method.targets=[0.5,1.5]", "method.targets"),
    ("method.training=progressive_shrinking", "method.training"),
    ("method.baselines=[scratch]", "method.baselines"),
    ("model.stage_strides=[1,3]", "model.stage_strides"),  # the spec's own check, named as the config key
    ("model.kernel_sizes=[3,4]", "model.kernel_sizes"),
    ("method.target_metric=energy", "method.target_metric"),
    ("method.constraints.latency_ms=0", "method.constraints.latency_ms"),
    ("method.constraints.flops=1000", "method.constraints.flops"),  # below the smallest sub-net: infeasible
    ("method.predictor_link=softplus", "method.predictor_link"),
    ("method.predictor_ensemble=0", "method.predictor_ensemble"),
    ("method.search.uncertainty_penalty=1.0", "method.search.uncertainty_penalty"),  # one member has no spread
    ("method.search.uncertainty_penalty=-1", "method.search.uncertainty_penalty"),
    ("method.latency_device=gpu", "method.latency_device"),
])
def test_bad_configs_fail_before_any_work_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        validate(compose([*TINY, override]))


def test_unknown_constraint_fails_naming_the_key():
    with pytest.raises(Exception, match=r"method\.constraints\.joules"):
        validate(compose([*TINY, "method.constraints.joules=1.0"]))


def test_supernet_from_must_be_a_finished_supernet_of_the_same_space(tmp_path):
    with pytest.raises(InputError, match=r"method\.supernet_from=.*supernet/final\.pt does not exist"):
        check_inputs(validate(compose([*TINY, f"method.supernet_from={tmp_path}"])))
    (tmp_path / "supernet").mkdir()
    (tmp_path / "supernet" / "final.pt").write_bytes(b"")
    OmegaConf.save(compose([*TINY, "model.stage_widths=[8,16]"]), tmp_path / "config.yaml")
    with pytest.raises(ConfigError, match=r"trained with model\.stage_widths=\[8, 16\], not \[8, 12\]"):
        check_inputs(validate(compose([*TINY, f"method.supernet_from={tmp_path}"])))


def test_unknown_phase_dimension_fails_before_any_work():
    with pytest.raises(ConfigError, match=r"method\.phases\[1\].*unknown key.*width"):
        validate(compose([*TINY, "+method.phases.1.width=[2]"]))


def test_one_row_per_unit_budgets_respected_and_exports_reproduce_rows(tmp_path):
    rows = runner.run_job(compose([*TINY, *ONE_EPOCH]), tmp_path)
    typed = validate(compose([*TINY, *ONE_EPOCH]))
    data = load_data(typed)  # the job's splits (generated from the config), shaped as the task feeds them
    for split in ("test", "val"):
        setattr(data, f"x_{split}", as_channels(getattr(data, f"x_{split}"), typed.model.dims))
    assert not [k for r in rows for k in ROW_KEYS if k not in r]
    assert not [k for r in rows for k in undocumented_keys(r)]  # every key is in experiments/record_keys.py
    kinds = rows_by_kind(rows)
    assert {r["latency/device"] for r in rows if "latency/b1_ms" in r or "latency/entries" in r} == {"cpu"}
    assert [len(kinds[k]) for k in ("supernet", "latency_table", "ofa_corner", "predictor", "ofa_target",
                                    "scratch_corner", "width_multiplier")] == [1, 1, 8, 1, 2, 8, 2]
    full = kinds["supernet"][0]["flops/infer_per_sample"]
    for r in kinds["ofa_target"]:
        assert r["flops/infer_per_sample"] <= r["ofa/target_fraction"] * full  # never over the budget
        model, cfg = load_subnet(tmp_path / "targets" / f"t{r['ofa/target_fraction']:g}" / "subnet.safetensors")
        assert str(cfg) == r["ofa/subnet"] and SubnetConfig.parse(r["ofa/subnet"]) == cfg
        # the exported file alone reproduces the row's accuracies (weights and recalibrated BN statistics)
        assert accuracy(model, data.x_test, data.y_test, cfg.resolution) == r["acc/test"]
        assert accuracy(model, data.x_val, data.y_val, cfg.resolution) == r["acc/val"]
    for r in kinds["width_multiplier"]:
        assert r["flops/infer_per_sample"] <= r["ofa/target_fraction"] * full
    # The supernet's training FLOPs are the sum of its phases'; specialisation trains nothing.
    sup = kinds["supernet"][0]
    assert sup["flops/train_total"] == sum(v for k, v in sup.items() if k.endswith("/flops_train"))
    assert all(r["flops/train_total"] == 0 for r in kinds["ofa_target"] + kinds["ofa_corner"])
    assert 0 < kinds["predictor"][0]["predictor/samples"] == 12
    # A rerun in the same folder skips every finished unit and returns the same rows.
    again = runner.run_job(compose([*TINY, *ONE_EPOCH]), tmp_path)
    assert [r["acc/test"] for r in again] == [r["acc/test"] for r in rows]
    # Specialising the trained supernet for a new budget in another folder trains nothing and reuses its weights.
    other = tmp_path / "specialised"
    more = runner.run_job(compose([*TINY, *ONE_EPOCH, f"method.supernet_from={tmp_path}", "method.targets=[0.4]",
                                   "method.baselines=[]"]), other)
    mine = rows_by_kind(more)
    (sup,) = mine["supernet"]
    assert sup["flops/train_total"] == 0 and sup["ofa/supernet_from"] == str(tmp_path.resolve())
    assert sup["acc/test"] == kinds["supernet"][0]["acc/test"]  # same weights, same recalibration set
    a, b = (torch.load(d / "supernet" / "final.pt", weights_only=True)["model"] for d in (tmp_path, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (other / "metrics.jsonl").read_text().count('"unit": "supernet"')  # no training epochs logged
    (pred,) = mine["predictor"]  # the source's predictor, its held-out error and none of its cost
    assert pred["ofa/predictor_from"] == str(tmp_path.resolve())
    assert pred["predictor/rmse_points"] == kinds["predictor"][0]["predictor/rmse_points"]
    (target,) = mine["ofa_target"]
    assert target["ofa/target_fraction"] == 0.4 and target["flops/infer_per_sample"] <= 0.4 * full
    # Other predictor settings: fitted here to the source's measured sub-nets, none of them evaluated again.
    third = tmp_path / "ensemble"
    ens = rows_by_kind(runner.run_job(compose([
        *TINY, *ONE_EPOCH, f"method.supernet_from={tmp_path}", "method.targets=[0.4]", "method.baselines=[]",
        "method.predictor_ensemble=3", "method.predictor_link=sigmoid", "method.search.uncertainty_penalty=1.0",
        "method.predictor_bootstrap=true"]),
        third))
    (pred,) = ens["predictor"]
    assert pred["ofa/predictor_data_from"] == str(tmp_path.resolve()) and "ofa/predictor_from" not in pred
    assert (pred["predictor/ensemble"], pred["predictor/link"], pred["predictor/samples"]) == (3, "sigmoid", 12)
    assert pred["predictor/bootstrap"] is True
    source, refit = (torch.load(d / "predictor" / "predictor.pt", weights_only=True) for d in (tmp_path, third))
    assert torch.equal(source["accs"], refit["accs"]) and torch.equal(source["encodings"], refit["encodings"])
    (target,) = ens["ofa_target"]
    assert 0 < target["acc/predicted_val"] < 1 and target["acc/predicted_val_std"] > 0
    assert target["search/uncertainty_penalty"] == 1.0
    assert not [k for r in ens.values() for x in r for k in undocumented_keys(x)]


def synthetic_latency_table(cls, net, batch_size=1, warmup=5, repeats=20, device="cpu", timer="wall"):
    """A LatencyTable that grows with kernel, expand ratio and resolution, without timing anything: search results
    must not depend on how busy the machine is."""
    spec, depth = net.spec, max(net.spec.depths)
    blocks = {(s, i, k, e, r): 1e-5 * k * e * r / 40 for s in range(spec.num_stages) for i in range(depth)
              for k in spec.kernel_sizes for e in spec.expand_ratios for r in spec.resolutions}
    return cls(blocks, {r: 1e-4 for r in spec.resolutions}, depth, batch_size, timer=timer)


def test_latency_targets_with_a_flops_constraint_bound_the_search(tmp_path, monkeypatch):
    """method.target_metric=latency_ms: the searched sub-net's table latency is within its fraction of the full
    net's, and it also meets the absolute FLOPs constraint (a synthetic table: the search is what is tested)."""
    monkeypatch.setattr(ofa_task.LatencyTable, "build", classmethod(synthetic_latency_table))
    flops_limit = 160_000  # the smallest sub-net of TINY: 138,272 FLOPs
    rows = runner.run_job(compose([*TINY, *ONE_EPOCH, "method.target_metric=latency_ms", "method.targets=[0.6]",
                                   f"method.constraints.flops={flops_limit}", "method.baselines=[]",
                                   "method.latency_timer=auto"]), tmp_path)
    kinds = rows_by_kind(rows)
    (target,) = kinds["ofa_target"]
    full_table_ms = kinds["ofa_corner"][-1]["latency/b1_table_ms"]  # corners come by FLOPs; the last is the largest
    assert target["ofa/target_metric"] == "latency_ms" and target["ofa/target_flops"] == flops_limit
    assert target["latency/b1_table_ms"] <= 0.6 * full_table_ms * (1 + 1e-9)
    assert target["flops/infer_per_sample"] <= flops_limit
    # threads=1 and latency_timer=auto: the table times thread CPU, and its error is against the same clock
    assert target["latency/table_timer"] == "thread_cpu"
    assert target["latency/table_rel_error"] == pytest.approx(
        (target["latency/b1_table_ms"] - target["latency/b1_cpu_ms"]) / target["latency/b1_cpu_ms"], rel=1e-12)
    assert target["ofa/constraints"] == f"flops<={flops_limit:.4g}, latency_ms<={0.6 * full_table_ms:.4g}"


def _train_only(out):
    return [*TINY, "method.phases.0.epochs=2", "method.phases.1.epochs=2", *ONE_EPOCH[2:], "method.baselines=[]",
            f"hydra.run.dir={out}"]


@pytest.mark.slow
def test_resume_after_sigkill_in_a_ps_phase_is_bit_identical(tmp_path):
    """Kill the job once the kernel phase has written a checkpoint; the rerun's supernet equals an uninterrupted
    run's bit for bit."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "CI": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "experiments.run"]
    subprocess.run([*cmd, *_train_only(tmp_path / "full")], cwd=ROOT, env=env, check=True, capture_output=True)
    proc = subprocess.Popen([*cmd, *_train_only(tmp_path / "killed")], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed" / "supernet" / "checkpoint.pt"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and torch.load(ckpt, weights_only=True)["phase"] == "kernel":
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the job finished before it could be killed in the kernel phase"
    subprocess.run([*cmd, *_train_only(tmp_path / "killed")], cwd=ROOT, env=env, check=True, capture_output=True)
    a = torch.load(tmp_path / "full" / "supernet" / "final.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "killed" / "supernet" / "final.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert epoch_rows(tmp_path / "killed") == epoch_rows(tmp_path / "full")  # each epoch's row exactly once


def epoch_rows(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["unit"], r["phase"], r["epoch"], r["train/loss"]) for r in rows if "unit" in r]


def test_width_multiplier_is_the_largest_within_budget_of_any_growing_cost():
    spec = validate(compose(TINY)).model.spec(in_channels=1, num_classes=10)
    m, cost = width_multiplier_for(spec, 37.0, cost=lambda m: 100 * m)  # e.g. a measured latency
    assert cost <= 37.0 and 0.37 - 1e-3 <= m <= 0.37
    with pytest.raises(ValueError, match="no width multiplier fits a cost of 0.05; the cheapest"):
        width_multiplier_for(spec, 0.05, cost=lambda m: 100 * m)


def test_a_kill_between_an_epoch_row_and_its_checkpoint_logs_that_row_once(tmp_path):
    """Epoch 3's row reached the log but the process died before its checkpoint: the restarted unit cuts the log back
    to the last checkpoint's position, so the retrained epoch 3 appears once."""
    def restart():
        logger = LocalLogger(tmp_path, SimpleNamespace(log_every=0), None, None)
        ctx = SimpleNamespace(logger=logger, preemption=SimpleNamespace(poll=lambda: False), carbon_plan=None)
        return logger, *ofa_task.resumable(SimpleNamespace(ctx=ctx), tmp_path / "supernet", "supernet")

    def state(epoch):
        return {"phase": "full", "epoch": epoch, "step": 10 * epoch, "history": [{"loss": 1.0 / epoch}]}

    (tmp_path / "supernet").mkdir()
    logger, resumed, hook = restart()
    assert resumed is None
    hook(state(1))
    hook(state(2))
    logger.log({"unit": "supernet", "phase": "full", "epoch": 3, "train/loss": 1 / 3}, 30)  # no checkpoint follows
    logger.finish("killed")
    logger, resumed, hook = restart()
    assert resumed["epoch"] == 2
    hook(state(3))
    assert [(p, e) for _, p, e, _ in epoch_rows(tmp_path)] == [("full", 1), ("full", 2), ("full", 3)]


def test_lr3_variant_changes_only_the_lrs_after_the_full_phase():
    base, lr3 = (validate(compose(["experiment=ofa_mnist1d", *extra])).method.phases
                 for extra in ([], ["variant=ofa_ps_lr3"]))
    assert [replace(p, lr=0.0) for p in base] == [replace(p, lr=0.0) for p in lr3]  # same phases but the lr
    assert lr3[0].lr == base[0].lr and lr3[1].lr == 0.1
    assert [q.lr / p.lr for p, q in zip(base[2:], lr3[2:])] == pytest.approx([3.0] * 4)


def test_kernel_first_variant_is_lr3_with_elastic_kernels_in_the_full_phase():
    lr3, first = (validate(compose(["experiment=ofa_mnist1d", f"variant={v}"])).method
                  for v in ("ofa_ps_lr3", "ofa_ps_lr3_kernel_first"))
    assert first.phases[0] == replace(lr3.phases[0], kernel_sizes="all") and first.phases[1:] == lr3.phases[1:]
    assert (first.training, first.baselines) == (lr3.training, lr3.baselines)


@pytest.mark.parametrize("where, device, timer, expected", [
    ("run", "cpu", "auto", "thread_cpu"),  # one intra-op thread on a CPU (set below)
    ("run", "cuda", "auto", "wall"),  # an accelerator's time is not the thread's
    ("cpu", "cuda", "thread_cpu", "thread_cpu"),  # a GPU run measuring CPU deployment
    ("run", "cuda", "thread_cpu", ConfigError),
])
def test_latency_device_and_timer_resolve_from_the_run(monkeypatch, where, device, timer, expected):
    """method.latency_device=run measures where the run computes (a GPU run: its GPU), cpu on this host's CPU."""
    from types import SimpleNamespace

    from experiments.tasks.ofa import Job

    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    cfg = SimpleNamespace(method=SimpleNamespace(latency_device=where, latency_timer=timer))
    job = Job(cfg, SimpleNamespace(runtime=SimpleNamespace(device=torch.device(device))), None, None, None, [])
    assert job.latency_device == torch.device("cpu" if where == "cpu" else device)
    if expected is ConfigError:
        with pytest.raises(ConfigError, match="method.latency_timer='thread_cpu' is invalid with latency on cuda"):
            _ = job.latency_timer
    else:
        assert job.latency_timer == expected
