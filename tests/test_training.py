"""The shared loop with masks: exact zeros, rewinding bit for bit, resume bit-identical to an uninterrupted run."""

import pytest
import torch
from omegaconf import OmegaConf

from experiments.config import OptimCfg
from experiments.data import Splits
from experiments.tasks.lth import run_imp, start_state
from experiments.trainer import fit
from lth import STRATEGIES, PruneRates, build_model, ones_mask
from meter import Meter, MeterConfig


class NullLogger:
    def log(self, row, step=None):
        pass


def _data(n=240, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 40, generator=g)
    y = (x[:, :10].argmax(1)).long()
    return Splits(x[:160], y[:160], x[160:200], y[160:200], x[200:], y[200:])


def _pruned_model(seed=0):
    torch.manual_seed(seed)
    model = build_model("mlp", 40, 10, hidden=[32, 32])
    mask = STRATEGIES.get("magnitude_layerwise")(model, ones_mask(model, model.prunable_names()), PruneRates(0.6))
    return model, mask


def _meter():
    return Meter(MeterConfig(enabled=False), out_dir=None)


@pytest.mark.parametrize("optim", [
    OptimCfg(name="sgd", lr=0.1, momentum=0.9, weight_decay=1e-3, batch_size=20, epochs=3),
    OptimCfg(name="adam", lr=1e-2, weight_decay=1e-3, batch_size=20, epochs=3),
])
def test_pruned_weights_stay_exactly_zero(optim):
    model, mask = _pruned_model()
    with _meter() as meter:
        fit(model, _data(), optim, seed=0, total_steps=24, mask=mask, meter=meter, logger=NullLogger(), tag="t",
            progress=False)
    params = dict(model.named_parameters())
    for name, m in mask.items():
        assert torch.all(params[name][~m] == 0), name
        assert torch.count_nonzero(params[name][m]) == int(m.sum())  # survivors trained, not frozen at zero


def test_resume_is_bit_identical_to_uninterrupted(tmp_path):
    optim = OptimCfg(name="sgd", lr=0.05, momentum=0.9, weight_decay=1e-4, batch_size=20, epochs=4)
    reference, mask = _pruned_model()
    with _meter() as meter:
        fit(reference, _data(), optim, seed=3, total_steps=32, mask=mask, meter=meter, logger=NullLogger(),
            tag="ref", progress=False)

    class Crash(Exception):
        pass

    class CrashingLogger(NullLogger):
        def log(self, row, step=None):
            if step == 20:  # mid-epoch 3: the checkpoint at step 16 is the last one written
                raise Crash

    interrupted, mask = _pruned_model()
    ckpt = tmp_path / "checkpoint.pt"
    with _meter() as meter, pytest.raises(Crash):
        fit(interrupted, _data(), optim.__class__(**{**optim.__dict__, "eval_every": 4}), seed=3, total_steps=32,
            mask=mask, meter=meter, logger=CrashingLogger(), tag="a", checkpoint_path=ckpt, progress=False)
    assert ckpt.exists()
    resumed, _ = _pruned_model(seed=99)  # different init: everything must come from the checkpoint
    with _meter() as meter:
        fit(resumed, _data(), optim.__class__(**{**optim.__dict__, "eval_every": 4}), seed=3, total_steps=32,
            mask=mask, meter=meter, logger=NullLogger(), tag="b", checkpoint_path=ckpt, progress=False)
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name


def test_nan_loss_fails_with_step_and_value():
    from experiments.trainer import NonFiniteLossError

    model, mask = _pruned_model()
    data = _data()
    data.x_train[0, 0] = float("nan")
    optim = OptimCfg(name="sgd", lr=0.1, batch_size=160, steps=3)
    with _meter() as meter, pytest.raises(NonFiniteLossError, match=r"nan at step 0"):
        fit(model, data, optim, seed=0, total_steps=3, mask=mask, meter=meter, logger=NullLogger(), tag="t",
            progress=False)


def test_rewound_weights_equal_step_k_weights_times_mask(tmp_path, tiny_cfg):
    from experiments.context import RunContext

    cfg = OmegaConf.to_object(OmegaConf.merge(tiny_cfg, {"method": {"rewind": "3it", "levels": 1}}))
    with _meter() as meter:
        ctx = RunContext(job_dir=tmp_path, meter=meter, logger=NullLogger(), identity={}, progress=False)
        run_imp(cfg, ctx)
    from experiments.checkpoint import load_checkpoint
    from lth.data import load_dataset

    rewind_file = tmp_path / "levels" / "rewind.pt"
    saved = load_checkpoint(rewind_file)
    assert saved["step"] == 3
    # The snapshot is the level-0 network after exactly 3 steps.
    data = load_dataset(cfg.data.name, **cfg.data.loader_kwargs())
    torch.manual_seed(cfg.seed)
    three = build_model(cfg.model.name, data.in_features, data.num_classes, hidden=cfg.model.hidden,
                        init=cfg.model.init)
    with _meter() as meter:
        fit(three, data, cfg.optim, seed=cfg.seed, total_steps=3, meter=meter, logger=NullLogger(), tag="k",
            progress=False)
    for name, value in three.state_dict().items():
        assert torch.equal(value, saved["model"][name]), name
    mask = load_checkpoint(tmp_path / "levels" / "level_01" / "mask.pt")["mask"]
    from experiments.tasks.lth import LevelFiles
    model, start, unit_mask, _ = start_state(cfg, data, "ticket", 1, mask, LevelFiles(tmp_path), 3)
    assert start == 3 and unit_mask is mask
    for name, value in model.state_dict().items():
        expected = saved["model"][name] * mask[name] if name in mask else saved["model"][name]
        assert torch.equal(value, expected), name


def test_carbon_plan_waits_for_allowed_hours_and_exits_resumably_when_exhausted(tmp_path):
    import time

    from experiments.preemption import Preempted
    from meter.schedule import Plan

    optim = OptimCfg(name="sgd", lr=0.1, batch_size=20, epochs=2)
    logged = []

    class TimeLogger(NullLogger):
        def log(self, row, step=None):
            logged.append(time.time())

    start = time.time() + 0.3
    model, mask = _pruned_model()
    with _meter() as meter:
        fit(model, _data(), optim, seed=0, total_steps=16, mask=mask, meter=meter, logger=TimeLogger(), tag="t",
            progress=False, carbon_plan=Plan([(start, start + 3600)]))
    assert min(logged) >= start  # no step ran before the allowed interval opened
    exhausted = Plan([(time.time() - 10, time.time() - 5)])
    with _meter() as meter, pytest.raises(Preempted, match="no allowed hours"):
        fit(model, _data(), optim, seed=0, total_steps=16, mask=mask, meter=meter, logger=NullLogger(), tag="t",
            progress=False, carbon_plan=exhausted, checkpoint_path=tmp_path / "c.pt")
