"""`lth.LotteryTicket` and `lth.run_imp` on models that are not ours, in loops that are not ours."""

import pytest
import torch
from torch import nn

from lth import LotteryTicket, density, is_subset, prunable_names, run_imp


class Net(nn.Module):
    """A model of the kind a user brings: conv + BN + an attribute-named head, no `prunable_names()`."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(4 * 6 * 6, 16), nn.ReLU())
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.body(torch.relu(self.bn(self.conv(x)))))


def _train(model, steps: int, ticket=None, snapshot_at=None, seed=0):
    """A plain user loop (SGD with momentum and weight decay: both would revive pruned weights)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    for step in range(steps):
        if ticket is not None and step == snapshot_at:
            ticket.snapshot(step, opt)
        x, y = torch.randn(8, 1, 6, 6, generator=gen), torch.randint(0, 3, (8,), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if ticket is not None:
            ticket.apply()
    return opt


def test_prunable_names_inferred_and_globbed():
    net = Net()
    assert prunable_names(net) == ["conv.weight", "body.1.weight", "head.weight"]
    assert prunable_names(net, exclude=["head.*"]) == ["conv.weight", "body.1.weight"]
    assert prunable_names(net, include=["*.bias"]) == ["conv.bias", "bn.bias", "body.1.bias", "head.bias"]
    with pytest.raises(ValueError, match="no prunable weights left"):
        prunable_names(net, exclude=["*"])


def test_layerwise_counts_output_rate_and_exclusion():
    torch.manual_seed(0)
    net = Net()
    ticket = LotteryTicket(net, rates=0.2, output_rate=0.5, exclude=["conv.*"], example_input=torch.zeros(1, 1, 6, 6))
    mask = ticket.prune()
    assert set(mask) == {"body.1.weight", "head.weight"}
    assert int(mask["body.1.weight"].sum()) == 2304 - round(0.2 * 2304)
    assert int(mask["head.weight"].sum()) == 48 - 24
    # magnitude: every kept weight is at least as large as every pruned one, per layer
    w = net.body[1].weight.detach().abs()
    assert w[mask["body.1.weight"]].min() >= w[~mask["body.1.weight"]].max()
    second = ticket.prune()
    assert ticket.level == 2 and is_subset(second, mask)
    assert int(second["body.1.weight"].sum()) == 1843 - round(0.2 * 1843)


def test_rewind_restores_snapshot_bit_for_bit_and_apply_keeps_pruned_zero():
    torch.manual_seed(0)
    net = Net()
    ticket = LotteryTicket(net, rewind="3it")
    _train(net, 10, ticket, snapshot_at=ticket.rewind_step)
    snap = ticket.snapshot_state()
    assert snap["step"] == 3 and snap["optimizer"]["state"]  # momentum buffers of step 3, copied
    mask = ticket.prune()
    ticket.rewind()
    for name, value in net.state_dict().items():
        expected = snap["model"][name] * mask[name] if name in mask else snap["model"][name]
        assert torch.equal(value, expected), name
    _train(net, 5, ticket)
    params = dict(net.named_parameters())
    assert all(bool((params[n][~m] == 0).all()) for n, m in mask.items())
    assert all(bool((params[n][m] != 0).all()) for n, m in mask.items())  # survivors trained, none frozen


def test_state_dict_round_trip_resumes_exactly(tmp_path):
    torch.manual_seed(0)
    a = LotteryTicket(Net(), rates=0.3)
    _train(a.model, 4, a, snapshot_at=0)
    a.prune()
    torch.save(a.state_dict(), tmp_path / "t.pt")
    b = LotteryTicket(Net(), rates=0.3)
    b.model.load_state_dict(a.model.state_dict())
    b.load_state_dict(torch.load(tmp_path / "t.pt", weights_only=True))
    assert b.level == 1 and all(torch.equal(a.mask[n], b.mask[n]) for n in a.mask)
    a.prune(), b.prune()
    assert all(torch.equal(a.mask[n], b.mask[n]) for n in a.mask)
    with pytest.raises(ValueError, match="strategy"):
        LotteryTicket(Net(), strategy="magnitude_global").load_state_dict(a.state_dict())


def test_epoch_rewind_needs_epoch_length():
    with pytest.raises(ValueError, match="iterations_per_epoch"):
        LotteryTicket(Net(), rewind="2ep")
    assert LotteryTicket(Net(), rewind="1ep5it", iterations_per_epoch=10).rewind_step == 15


def test_run_imp_on_a_user_model_and_loop():
    seen = []

    def train(model, unit):
        weights = {k: v.clone() for k, v in model.state_dict().items()}
        seen.append((unit.level, unit.kind, unit.start_step, weights, unit.mask))
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        gen = torch.Generator().manual_seed(1)
        for step in range(unit.start_step, 6):
            if step == unit.rewind_step:
                unit.snapshot(step, opt)
            x, y = torch.randn(8, 1, 6, 6, generator=gen), torch.randint(0, 3, (8,), generator=gen)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            unit.apply()
        return {"nonzero": sum(int((p != 0).sum()) for n, p in model.named_parameters() if n in unit.mask)}

    rows = run_imp(Net, train, levels=2, baselines=("random_reinit", "random_prune", "one_shot"), rates=0.5,
                   rewind=2, seed=3)
    assert [(r["lth/level"], r["lth/kind"]) for r in rows] == [(0, "ticket")] + [
        (lvl, k) for lvl in (1, 2) for k in ("ticket", "random_reinit", "random_prune", "one_shot")]
    by = {(lvl, k): (start, w, m) for lvl, k, start, w, m in seen}
    for (level, kind), (start, _, mask) in by.items():
        assert start == (0 if level == 0 else 2)
        kept = sum(int(m.sum()) for m in mask.values())
        row = next(r for r in rows if (r["lth/level"], r["lth/kind"]) == (level, kind))
        assert row["nonzero"] == kept  # trained with the mask re-applied: exactly the kept weights are nonzero
        assert row["lth/percent_remaining"] == pytest.approx(100 * density(mask))
    ticket1, reinit1 = by[(1, "ticket")], by[(1, "random_reinit")]
    assert all(torch.equal(ticket1[2][n], reinit1[2][n]) for n in ticket1[2])  # same mask
    assert not torch.equal(ticket1[1]["head.weight"], reinit1[1]["head.weight"])  # other init
    assert is_subset(by[(2, "ticket")][2], ticket1[2])
    prune1 = by[(1, "random_prune")]
    assert not torch.equal(prune1[2]["body.1.weight"], ticket1[2]["body.1.weight"])
    # random_prune starts from the rewound weights: where both masks keep a weight, it equals the ticket's
    both = prune1[2]["body.1.weight"] & ticket1[2]["body.1.weight"]
    assert torch.equal(prune1[1]["body.1.weight"][both], ticket1[1]["body.1.weight"][both])


def test_run_imp_refuses_a_loop_that_never_snapshots():
    with pytest.raises(RuntimeError, match="unit.snapshot"):
        run_imp(Net, lambda model, unit: {}, levels=1)
    with pytest.raises(KeyError, match="IMP baseline"):
        run_imp(Net, lambda model, unit: {}, levels=1, baselines=("no_such",))
