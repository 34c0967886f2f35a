"""The OFA task against the paper and its reference code: the KD teacher is a config role, warm-up reaches the rows,
scratch baselines start from a fresh initialisation, dropout before the classifier is a model key, and the job
prints one progress line per epoch to a log file like every task."""

import io
import sys

import pytest
import torch
from omegaconf import OmegaConf

import experiments.run as runner
from experiments.config import ConfigError, validate
from experiments.progress import JobProgress
from experiments.tasks.ofa import scratch_model
from experiments.tasks.ofa_config import OFAModelCfg
from once_for_all import ArchSpace
from once_for_all.supernet import OFASupernet
from tests.helpers import ROOT, compose
from tests.test_ofa_task import ONE_EPOCH, TINY

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("overrides, key", [
    (["method.teacher=null"], "method.kd_weight"),  # PS phases would distil from nothing
    (["method.teacher=full_net"], "method.teacher"),  # not a phase of the schedule
    (["method.training=no_ps_kd", "method.teacher=kernel"], "method.teacher"),  # no_ps_kd has full + no_ps only
])
def test_teacher_role_errors_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose([*TINY, *overrides]))


@pytest.mark.parametrize("overrides", [
    ["method.teacher=null", "method.kd_weight=0"],
    ["method.training=no_ps", "method.teacher=null"],  # no phase distils
    ["method.training=sandwich", "method.teacher=null"],  # in-place distillation
    ["method.phases.0.name=warm", "method.teacher=first"],
])
def test_teacher_role_accepts_consistent_configs(overrides):
    validate(compose([*TINY, *overrides]))


def test_kd_without_a_teacher_exits_2_naming_the_key(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["leanlab", "experiment=ofa_mnist1d", "method.teacher=null"])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    with pytest.raises(SystemExit) as exit_info:  # found before Hydra starts: in-process, no work done
        runner.main()
    assert exit_info.value.code == 2 and "method.kd_weight" in capsys.readouterr().err


def test_scratch_baselines_start_from_a_fresh_init_of_their_own_shapes():
    spec = validate(compose(["experiment=ofa_mnist1d"])).model.spec(in_channels=1, num_classes=10)
    cfg = ArchSpace.full(spec).corners()["dmax-emax-kmin"]  # every block k=3
    model = scratch_model(spec, cfg, seed=0)
    w = torch.cat([b.depthwise[0].weight.flatten() for b in model.blocks])
    fresh = 1 / 3  # U(+-1/sqrt(3)): std 1/sqrt(3) / sqrt(3)
    assert w.std().item() == pytest.approx(fresh, rel=0.08)
    assert w.abs().max().item() > 7 ** -0.5  # a crop of a 7-tap init never exceeds 1/sqrt(7)
    torch.manual_seed(0)
    sliced = OFASupernet(spec).blocks[0].kernel(3, 8).detach()
    assert sliced.abs().max().item() <= 7 ** -0.5  # what the old baseline started from


def test_dropout_before_the_classifier_is_a_model_key():
    imagenet = OmegaConf.load(ROOT / "conf" / "model" / "ofa_mobilenetv3.yaml")
    assert imagenet.dropout == 0.1
    assert OmegaConf.load(ROOT / "conf" / "model" / "ofa_mnist1d.yaml").get("dropout", 0.0) == 0.0
    with pytest.raises(ConfigError, match="model.dropout"):
        OFAModelCfg(dropout=1.0)
    spec = OFAModelCfg(dropout=0.5).spec(in_channels=1, num_classes=3)
    net = OFASupernet(spec)
    x = torch.randn(4, 1, 40)
    torch.manual_seed(0)
    a = net.train()(x)
    assert not torch.equal(a, net(x))  # dropped differently on each training pass
    net.eval()
    assert torch.equal(net(x), net(x))
    assert OFASupernet(OFAModelCfg().spec(in_channels=1, num_classes=3)).dropout is None  # default: none


def test_job_prints_one_line_per_epoch_and_counts_its_units(tmp_path, monkeypatch):
    out, seen = io.StringIO(), {}
    real = JobProgress.for_config

    def spy(typed):
        job = real(typed)
        job.stream = out
        seen["job"] = job
        return job

    monkeypatch.setattr(runner.JobProgress, "for_config", spy)
    cfg = compose([*TINY, *ONE_EPOCH, "progress=true", "method.targets=[1.0]", "method.baselines=[width_multiplier]"])
    rows = runner.run_job(cfg, tmp_path)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    names = ["full", "kernel", "depth_1", "depth_2", "expand_1", "expand_2"]
    assert [line.split(" step")[0] for line in lines] == (
        [f"supernet/{n} epoch {i}/6" for i, n in enumerate(names, 1)] + ["width_multiplier/t1 epoch 1/1"])
    assert all("| unit " in line and " lr " in line for line in lines)
    assert seen["job"].units_total == seen["job"].units_done == len(rows) == 13
    # the reference's warm-up, recorded: 0.4 of an epoch of 7 steps in the full phase, 0.3 in kernel, none in depth_1
    (sup,) = [r for r in rows if r["ofa/kind"] == "supernet"]
    assert [sup[f"phase/{n}/warmup_steps"] for n in names] == [3, 2, 0, 2, 0, 2]
