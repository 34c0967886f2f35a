import copy
import math
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from meter.flops import FLOP_FIXES
from once_for_all.schedule import PS_SCHEDULE, Phase
from once_for_all.supernet import OFASupernet
from once_for_all.train_flops import TrainFlops
from once_for_all.training import (
    SAMPLERS,
    Batches,
    OptimConfig,
    _step,
    soft_cross_entropy,
    train_phase,
    train_static,
)
from tests.once_for_all.ofa_testutils import SPEC_1D, inputs, randomize

pytestmark = pytest.mark.usefixtures("one_thread")
PHASES = {p.name: p for p in PS_SCHEDULE}


def zero_flops(*args, **kwargs) -> int:
    return 0


@pytest.mark.parametrize("name", [n for n in SAMPLERS if n != "static"])
@pytest.mark.parametrize("phase", ["full", "kernel", "depth_1", "expand_1"])
def test_samplers_yield_only_configs_of_the_phase_space(name, phase):
    space, n = PHASES[phase].space(SPEC_1D), 4
    for step in range(15):
        cfgs = SAMPLERS.get(name).sample(space, random.Random(step), n)
        assert len(cfgs) == n
        for cfg in cfgs:
            space.validate(cfg)
    if name != "sandwich":  # one resolution per step, as the reference loader
        assert len({c.resolution for c in cfgs}) == 1


def test_sandwich_yields_largest_then_smallest():
    space = PHASES["expand_2"].space(SPEC_1D)
    cfgs = SAMPLERS.get("sandwich").sample(space, random.Random(0), 4)
    assert cfgs[:2] == [space.largest(), space.smallest()]
    assert SAMPLERS.get("sandwich").inplace and not SAMPLERS.get("progressive").inplace
    with pytest.raises(ValueError, match="subnets_per_step=1"):
        SAMPLERS.get("sandwich").sample(space, random.Random(0), 1)


def test_gradients_of_two_subnets_are_summed_before_one_step():
    torch.manual_seed(0)
    net = randomize(OFASupernet(SPEC_1D).double())
    space = PHASES["expand_2"].space(SPEC_1D)
    a, b = space.sample(random.Random(1)), space.sample(random.Random(2))
    x, y = inputs(SPEC_1D, 16, batch=4), torch.tensor([0, 1, 2, 3])
    expected = {n: torch.zeros_like(p) for n, p in net.named_parameters()}
    for cfg in (a, b):
        net.zero_grad(set_to_none=True)
        net.set_active(cfg)
        F.cross_entropy(net(F.interpolate(x, size=cfg.resolution, mode="linear")), y).backward()
        for n, p in net.named_parameters():
            if p.grad is not None:
                expected[n] += p.grad
    opt = torch.optim.SGD(net.parameters(), lr=0.0)  # lr 0: the step leaves weights and grads to compare
    _step(net, [a, b], x, y, opt, None, 0.0, 0.0, False, zero_flops, dict.fromkeys(
        ("optimizer_steps", "subnet_steps", "samples", "flops_train"), 0))
    for n, p in net.named_parameters():
        got = p.grad if p.grad is not None else torch.zeros_like(p)
        assert torch.allclose(got, expected[n], rtol=0, atol=1e-12), n


def test_soft_cross_entropy_by_hand():
    logits, target = torch.tensor([[1.0, 2.0, 0.0]]), torch.tensor([[0.0, 0.0, math.log(2.0)]])
    log_z = math.log(math.e + math.e ** 2 + 1)
    want = -(0.25 * (1 - log_z) + 0.25 * (2 - log_z) + 0.5 * (0 - log_z))
    assert soft_cross_entropy(logits, target).item() == pytest.approx(want, rel=1e-6)


def test_step_loss_is_ce_plus_weighted_kd_against_the_teacher():
    torch.manual_seed(0)
    net = nn.Linear(3, 4).double()
    teacher = nn.Linear(3, 4).double()
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0])
    counters = dict.fromkeys(("optimizer_steps", "subnet_steps", "samples", "flops_train"), 0)
    got = _step(net, [None], x, y, torch.optim.SGD(net.parameters(), lr=0.0), teacher, 0.7, 0.1, False,
                zero_flops, counters)
    out, t = net(x), teacher(x)
    want = F.cross_entropy(out, y, label_smoothing=0.1) + 0.7 * torch.mean(
        torch.sum(-F.softmax(t, 1) * F.log_softmax(out, 1), 1))
    assert got == pytest.approx(want.item(), rel=1e-12)
    assert counters == {"optimizer_steps": 1, "subnet_steps": 1, "samples": 5, "flops_train": 0}


SHARED_FLOPS = TrainFlops()  # the first run counts, later ones hit its cache: counting must not shift any RNG


def _phase_run(seed_net: int, epochs_to_run: int | None, state=None, path=None):
    torch.manual_seed(seed_net)
    net = OFASupernet(SPEC_1D)
    torch.manual_seed(0)
    teacher = copy.deepcopy(OFASupernet(SPEC_1D))
    g = torch.Generator().manual_seed(5)
    data = Batches(torch.randn(24, 1, 16, generator=g), torch.randint(0, 5, (24,), generator=g), 8)
    phase = Phase("expand", 3, 0.05, kernel_sizes="all", expand_ratios="all", depths="all", subnets_per_step=2,
                  resolutions=(16,))

    def hook(s):
        torch.save(s, path)
        if s["epoch"] == epochs_to_run:
            raise KeyboardInterrupt  # a kill at an epoch end

    try:
        run = train_phase(net, phase, data, seed=7, teacher=teacher, state=state, on_epoch_end=hook,
                          label_smoothing=0.1, flops=SHARED_FLOPS)
    except KeyboardInterrupt:
        return net, None
    return net, run


def test_resume_from_an_epoch_end_state_is_bit_identical(tmp_path):
    full, run = _phase_run(0, None, path=tmp_path / "a.pt")
    _phase_run(0, 1, path=tmp_path / "b.pt")
    state = torch.load(tmp_path / "b.pt", weights_only=True)
    assert state["epoch"] == 1
    resumed, run2 = _phase_run(99, None, state=state, path=tmp_path / "c.pt")  # other init: state wins
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    assert run2["history"] == run["history"] and run2["counters"] == run["counters"]
    assert run["counters"]["subnet_steps"] == 3 * 3 * 2 and run["counters"]["flops_train"] > 0


def test_train_flops_equal_flop_counter_on_the_whole_net():
    from torch.utils.flop_counter import FlopCounterMode

    net, tf = OFASupernet(SPEC_1D), TrainFlops()
    space = PHASES["expand_2"].space(SPEC_1D)
    for seed in range(3):
        cfg = space.sample(random.Random(seed))
        x = torch.randn(3, 1, cfg.resolution)
        net.set_active(cfg)
        with FlopCounterMode(display=False, custom_mapping=FLOP_FIXES) as mode:
            net(x).sum().backward()
        assert tf(net, cfg, x) == mode.get_total_flops()


def test_static_flops_golden_and_train_static_counts_them():
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    # per sample: forward 2*(6*5 + 5*3); backward: grad_w of both + grad_input of the 2nd only (x needs none)
    assert TrainFlops()(model, None, x) == 8 * (4 * 6 * 5 + 6 * 5 * 3)
    run = train_static(model, Batches(x, y, 4), epochs=2, lr=0.1, optim=OptimConfig(name="adam"))
    assert run["counters"]["flops_train"] == 2 * 2 * 4 * (4 * 6 * 5 + 6 * 5 * 3)
    assert run["counters"]["optimizer_steps"] == 4


def test_no_weight_decay_on_bn_and_bias():
    from once_for_all.training import build_optimizer

    net = OFASupernet(SPEC_1D)
    decay, no_decay = build_optimizer(net, OptimConfig()).param_groups
    assert decay["weight_decay"] == 3e-5 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim <= 1 for p in no_decay["params"])
    assert decay["nesterov"] and decay["momentum"] == 0.9


SCHEDULE = [Phase("full", 1, 0.05), Phase("kernel", 1, 0.05, kernel_sizes="all"),
            Phase("expand_1", 2, 0.05, kernel_sizes="all", depths="all", expand_ratios=(4, 6), subnets_per_step=2,
                  reorder_before=True)]


def _schedule_run(seed_net: int, kill_at: tuple | None, path, state=None):
    from once_for_all.training import train_schedule

    torch.manual_seed(seed_net)
    net = OFASupernet(SPEC_1D)
    g = torch.Generator().manual_seed(5)
    data = Batches(torch.randn(16, 1, 16, generator=g), torch.randint(0, 5, (16,), generator=g), 8)

    def hook(s):
        torch.save(s, path)
        if (s["phase_index"], s["epoch"]) == kill_at:
            raise KeyboardInterrupt

    try:
        return net, train_schedule(net, SCHEDULE, data, seed=3, state=state, on_epoch_end=hook, flops=zero_flops)
    except KeyboardInterrupt:
        return net, None


@pytest.mark.parametrize("kill_at", [(0, 1), (2, 1)])  # at a phase boundary (teacher made next) / mid-phase
def test_schedule_resume_is_bit_identical_across_phases(tmp_path, kill_at):
    full, results = _schedule_run(0, None, tmp_path / "a.pt")
    _schedule_run(0, kill_at, tmp_path / "b.pt")
    state = torch.load(tmp_path / "b.pt", weights_only=True)
    resumed, results2 = _schedule_run(99, None, tmp_path / "c.pt", state=state)
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    assert [r["counters"] for r in results2] == [r["counters"] for r in results]
    assert [r["phase"] for r in results] == ["full", "kernel", "expand_1"]
    assert torch.load(tmp_path / "a.pt", weights_only=True)["teacher"] is not None


def test_a_non_finite_loss_stops_the_phase_naming_it():
    model = nn.Linear(2, 3)
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    data = Batches(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), 2)
    saved = []
    with pytest.raises(FloatingPointError, match="phase 'static' step 0: loss nan"):
        train_static(model, data, epochs=1, lr=0.1, on_epoch_end=saved.append)
    assert saved == []  # nothing checkpointed


def test_each_epoch_runs_in_a_meter_window():
    from meter import Measurement, Meter, MeterConfig

    data = Batches(torch.randn(8, 2), torch.zeros(8, dtype=torch.long), 4)
    with Meter(MeterConfig(enabled=False)) as meter:
        run = train_static(nn.Linear(2, 3), data, epochs=2, lr=0.1, meter=meter, name="scratch")
    energy = [Measurement.from_dict(h["energy"]) for h in run["history"]]
    assert [m.name for m in energy] == ["scratch-epoch0", "scratch-epoch1"]
    assert all(m.method == "disabled" for m in energy)


def test_train_flops_do_not_depend_on_seeing_a_frozen_teacher_first():
    """A resumed KD phase counts the (frozen) teacher before the student: the student's counts must not change."""
    net = OFASupernet(SPEC_1D)
    teacher = copy.deepcopy(net).requires_grad_(False)
    cfg = PHASES["expand_2"].space(SPEC_1D).sample(random.Random(3))
    x = inputs(SPEC_1D, cfg.resolution, batch=2).float()
    fresh = TrainFlops()(net, cfg, x)
    resumed = TrainFlops()
    resumed(teacher, cfg, x, backward=False)
    assert resumed(net, cfg, x) == fresh
