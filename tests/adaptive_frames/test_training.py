import pytest
import torch

from adaptive_frames.data.loader import ClipLoader
from adaptive_frames.losses import BudgetController, usage_balance
from adaptive_frames.stages import PolicyTrainConfig, finetune, precompute, pretrain_backbone, train_policy
from tests.adaptive_frames.af_testutils import small_model


def _data(n=48, t=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, t, 1, 16, 16, generator=g), torch.randint(3, (n,), generator=g)


@pytest.mark.parametrize("fraction", [0.3, 0.6])
def test_budget_mode_meets_the_target_within_10_percent(fraction):
    """Only the top backbone is informative (hand-made frozen frame logits), so the task term pulls every frame
    to the top resolution; the budget must hold mean GFLOPs/video at the target."""
    clips, labels = _data()
    model = small_model(skips=(1, 2))
    target = fraction * model.dense_flops(clips.shape[1])
    frame_logits = torch.zeros(len(clips), clips.shape[1], 2, 3)
    frame_logits[:, :, 0] = 3.0 * torch.nn.functional.one_hot(labels, 3)[:, None].float()
    cache = {"frame_logits": frame_logits, "low": model.lowres(clips)}
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.policy.parameters(), lr=1e-2)
    cfg = PolicyTrainConfig(epochs=30, tau0=1.0, gamma=0.0, lam=0.0, budget_gflops=target / 1e9, budget_lr=0.1)
    hist = train_policy(model, ClipLoader(clips, labels, 8, shuffle=True), opt, cfg, cache=cache,
                        generator=torch.Generator().manual_seed(0))
    ratios = [h["gflops"] * 1e9 / target for h in hist]
    assert max(ratios) > 1.1  # the task term alone would exceed the budget
    last = sum(ratios[-10:]) / 10
    assert abs(last - 1) < 0.10, [round(r, 3) for r in ratios]
    assert hist[-1]["lam"] > 0  # the budget is binding: the controller had to push


def test_budget_controller_dual_ascent():
    c = BudgetController(target_flops=100.0, lam=0.5, lr=0.1)
    assert c.update(150.0) == pytest.approx(0.55)
    assert c.update(50.0) == pytest.approx(0.50)
    for _ in range(20):
        c.update(0.0)
    assert c.lam == 0.0
    with pytest.raises(ValueError, match="target_flops"):
        BudgetController(target_flops=0.0)


def test_usage_balance_is_zero_at_uniform_and_positive_on_collapse():
    uniform = torch.eye(4).repeat(2, 1)[None]  # [1, 8, 4], each action used twice
    assert float(usage_balance(uniform, torch.ones(1, 8))) == pytest.approx(0.0)
    collapsed = torch.zeros(1, 8, 4)
    collapsed[..., 0] = 1
    assert float(usage_balance(collapsed, torch.ones(1, 8))) == pytest.approx(0.75**2 + 3 * 0.25**2)


def test_stages_run_and_lam_trades_accuracy_terms_for_cost():
    clips, labels = _data()
    model = small_model(skips=(1,))
    loader = ClipLoader(clips, labels, 16, shuffle=True)
    for i, r in enumerate(model.space.resolutions):
        hist = pretrain_backbone(model.backbones[i], r, loader, torch.optim.SGD(model.backbones[i].parameters(), 0.1), 1)
        assert hist[0]["loss"] > 0
    cache = precompute(model, clips)
    init = {k: v.clone() for k, v in model.policy.state_dict().items()}
    cost = {}
    for lam in (0.0, 5.0):
        model.policy.load_state_dict(init)
        torch.manual_seed(0)
        cfg = PolicyTrainConfig(epochs=6, tau0=1.0, gamma=0.0, lam=lam)
        hist = train_policy(model, loader, torch.optim.Adam(model.policy.parameters(), 1e-2), cfg, cache=cache)
        cost[lam] = hist[-1]["gflops"]
    assert cost[5.0] < 0.7 * cost[0.0]
    before = [p.clone() for p in model.policy.parameters()]
    ft = finetune(model, loader, torch.optim.SGD(model.backbones.parameters(), 0.01), 1)
    assert len(ft) == 1
    assert all(torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))  # policy frozen
    assert all(p.requires_grad for p in model.policy.parameters())  # and unfrozen afterwards


def test_a_non_finite_loss_stops_the_stage_before_any_step():
    from adaptive_frames.stages import Compute

    model = torch.nn.Linear(3, 2)
    before = model.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(FloatingPointError, match=r"not finite \(this rank's: nan\)"):
        Compute().step(model(torch.full((4, 3), float("nan"))).sum(), opt)
    assert torch.equal(model.weight, before)
