"""Retraining modes, optimizer-state policy and baselines, checked at the first retraining step."""

import copy

import pytest
import torch
from omegaconf import OmegaConf

import experiments.tasks.lth as lth_task
from experiments.checkpoint import load_checkpoint
from experiments.context import RunContext
from experiments.optim import lr_factor
from meter import Meter, MeterConfig


class NullLogger:
    def log(self, row, step=None):
        pass


def _run(tmp_path, tiny_cfg, monkeypatch, **method):
    cfg = OmegaConf.to_object(OmegaConf.merge(tiny_cfg, {
        "optim": {"schedule": "cosine"},
        "method": {"levels": 1, "rewind": "4it"} | method,
    }))
    calls = []
    real_fit = lth_task.fit

    def spy(model, data, optim_cfg, spec, services, **kw):
        lr_at = spec.lr_at or (lambda s: lr_factor(optim_cfg, s, spec.total_steps))
        calls.append({"tag": spec.tag, "start": spec.start_step, "lr": lr_at(spec.start_step),
                      "weights": {k: v.clone() for k, v in model.state_dict().items()},
                      "opt_state": copy.deepcopy(spec.optimizer_state), "mask": spec.mask, "total": spec.total_steps})
        return real_fit(model, data, optim_cfg, spec, services, **kw)

    monkeypatch.setattr(lth_task, "fit", spy)
    with Meter(MeterConfig(enabled=False), out_dir=None) as meter:
        rows = lth_task.run_imp(cfg, RunContext(job_dir=tmp_path, meter=meter, logger=NullLogger(), identity={},
                                                progress=False))
    return cfg, {c["tag"]: c for c in calls}, rows


def _masked(state, mask):
    return {k: v * mask[k] if k in mask else v for k, v in state.items()}


@pytest.mark.parametrize("mode", ["weight_rewind", "lr_rewind", "finetune"])
def test_first_retraining_step_weights_and_lr(tmp_path, tiny_cfg, monkeypatch, mode):
    cfg, calls, _ = _run(tmp_path, tiny_cfg, monkeypatch, retrain=mode, baselines=[])
    ticket = calls["L01/ticket"]
    total = ticket["total"]
    mask = load_checkpoint(tmp_path / "levels" / "level_01" / "mask.pt")["mask"]
    source = "rewind.pt" if mode == "weight_rewind" else "level_00/ticket/final.pt"
    expected = _masked(load_checkpoint(tmp_path / "levels" / source)["model"], mask)
    for name, value in ticket["weights"].items():
        assert torch.equal(value, expected[name]), name
    assert ticket["start"] == 4
    expected_lr = lr_factor(cfg.optim, total - 1, total) if mode == "finetune" else lr_factor(cfg.optim, 4, total)
    assert ticket["lr"] == pytest.approx(expected_lr)
    assert ticket["opt_state"] is None


def test_rewound_optimizer_state_is_the_step_k_state(tmp_path, tiny_cfg, monkeypatch):
    _, calls, _ = _run(tmp_path, tiny_cfg, monkeypatch, optimizer_state="rewound", baselines=[])
    saved = load_checkpoint(tmp_path / "levels" / "rewind.pt")["optimizer"]
    got = calls["L01/ticket"]["opt_state"]
    assert saved["state"][0]["step"] == 4  # Adam had taken exactly k steps
    for key in saved["state"]:
        for field in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(got["state"][key][field], saved["state"][key][field])


def test_baselines_match_the_ticket_density(tmp_path, tiny_cfg, monkeypatch):
    _, calls, rows = _run(tmp_path, tiny_cfg, monkeypatch,
                          baselines=["random_reinit", "random_prune", "one_shot"], levels=2)
    for level in (1, 2):
        ticket = calls[f"L{level:02d}/ticket"]["mask"]
        for kind in ("random_reinit", "random_prune", "one_shot"):
            other = calls[f"L{level:02d}/{kind}"]["mask"]
            for name in ticket:  # layer-wise strategy: same count in every layer, within rounding of compounding
                assert abs(int(other[name].sum()) - int(ticket[name].sum())) <= 1, (kind, name)
        reinit = calls[f"L{level:02d}/random_reinit"]["weights"]
        assert not torch.equal(reinit["net.0.weight"], calls[f"L{level:02d}/ticket"]["weights"]["net.0.weight"])
    kinds = {(r["lth/level"], r["lth/kind"]) for r in rows}
    assert (2, "one_shot") in kinds and len(rows) == 1 + 2 * 4


def test_stability_twin_reports_a_barrier_from_the_same_start(tmp_path, tiny_cfg, monkeypatch):
    _, calls, rows = _run(tmp_path, tiny_cfg, monkeypatch, baselines=[], stability=True, stability_points=5)
    for level in (0, 1):
        ticket, twin = calls[f"L{level:02d}/ticket"], calls[f"L{level:02d}/stability_twin"]
        assert twin["start"] == 4  # both copies start at the rewind step, the twin from the step-k weights
        assert twin["mask"] is ticket["mask"] or all(torch.equal(twin["mask"][k], ticket["mask"][k])
                                                     for k in ticket["mask"])
        if level == 1:
            for name, value in ticket["weights"].items():
                assert torch.equal(value, twin["weights"][name]), name
    twins = [r for r in rows if r["lth/kind"] == "stability_twin"]
    assert len(twins) == 2 and all(r["lth/lmc_barrier"] >= 0 for r in twins)
    assert all(isinstance(r["lth/lmc_stable"], bool) for r in twins)
