"""Once-for-all against its reference code (mit-han-lab/once-for-all): width re-ordering keeps the previous expand
phase's narrower group, the KD teacher is a role (not a phase name), and phases warm their lr up."""

import copy
from dataclasses import replace

import pytest
import torch
from torch import nn

import once_for_all.reorder as reorder_mod
import once_for_all.training as training
from once_for_all.reorder import reorder_channels
from once_for_all.schedule import PS_SCHEDULE, Phase, scaled
from once_for_all.supernet import OFASupernet
from once_for_all.training import Batches, phase_lr, teacher_index, train_schedule, train_static, warmup_steps
from tests.once_for_all.ofa_testutils import SPEC_1D, randomize

pytestmark = pytest.mark.usefixtures("one_thread")


def _columns(net):
    """Per block, the project conv's input columns (one per expanded channel) as hashable rows."""
    return [[tuple(c.flatten().tolist()) for c in b.project[0].weight.detach().transpose(0, 1)] for b in net.blocks]


def test_second_expand_sort_keeps_the_narrower_group_a_set_and_sorts_within_groups():
    net = randomize(OFASupernet(SPEC_1D).double(), seed=5)
    before = _columns(net)
    plain = copy.deepcopy(net)
    reorder_channels(plain)  # the first expand phase's sort: plain L1 over all channels
    reorder_channels(net, keep=(4.0,))
    crossed = 0
    for b, (block, cols, cols_plain) in enumerate(zip(net.blocks, _columns(net), _columns(plain))):
        w4, mid = block.mid_fn(4.0), len(cols)
        assert set(cols[:w4]) == set(before[b][:w4]) and set(cols[w4:]) == set(before[b][w4:])
        crossed += len(set(cols_plain[:w4]) - set(before[b][:w4]))
        l1 = block.project[0].weight.abs().sum((0, 2))
        for lo, hi in ((0, w4), (w4, mid)):  # descending L1 inside each group
            assert bool((l1[lo + 1:hi] <= l1[lo:hi - 1]).all())
    assert crossed > 0  # a plain sort would have moved channels into the e=4 group


def test_schedule_protects_the_previous_phases_narrower_groups(monkeypatch):
    calls = []
    monkeypatch.setattr(reorder_mod, "reorder_channels", lambda net, optimizer=None, keep=(): calls.append(keep))
    monkeypatch.setattr(training, "train_phase", lambda net, phase, batches, **kw: {"phase": phase.name})
    phases = scaled(PS_SCHEDULE, 0.01)
    train_schedule(OFASupernet(SPEC_1D), phases, None, kd_weight=1.0)
    assert calls == [(), (4.0,)]  # expand_1: plain L1; expand_2: expand_1's e=4 group kept


def _teachers(monkeypatch, phases, **kw):
    seen = {}
    monkeypatch.setattr(training, "train_phase",
                        lambda net, phase, batches, teacher=None, **_: seen.setdefault(phase.name, teacher) or {})
    train_schedule(nn.Linear(2, 2), phases, None, **kw)
    return seen


def test_the_teacher_is_the_first_phase_whatever_its_name(monkeypatch):
    phases = [replace(p, reorder_before=False) for p in scaled(PS_SCHEDULE, 0.01)]
    phases[0] = replace(phases[0], name="warm_start")
    seen = _teachers(monkeypatch, phases, kd_weight=1.0)
    assert seen["warm_start"] is None and all(seen[p.name] is not None for p in phases[1:])
    seen = _teachers(monkeypatch, phases, kd_weight=1.0, teacher_after="kernel")
    assert [seen[p.name] is not None for p in phases] == [False, False, True, True, True, True]


def test_kd_without_a_teacher_or_with_an_unknown_one_is_refused():
    phases = list(PS_SCHEDULE)
    with pytest.raises(ValueError, match="kd_weight=1.0 but no teacher"):
        teacher_index(phases, None, 1.0)
    with pytest.raises(ValueError, match="teacher='full_net' is not a phase"):
        teacher_index(phases, "full_net", 1.0)
    assert teacher_index(phases, None, 0.0) is None
    assert teacher_index(phases, "depth_1", 1.0) == 2
    assert teacher_index(phases, "first", 1.0) == 0
    # the sandwich rule distils in place, no_ps without KD: neither needs a teacher
    assert teacher_index([Phase("s", 1, 0.1, sampler="sandwich")], None, 1.0) is None
    assert teacher_index([Phase("n", 1, 0.1, sampler="no_ps", distill=False)], None, 1.0) is None


def test_phase_lr_warms_up_linearly_then_cosine_from_the_peak():
    lrs = [phase_lr(1.0, s, 10, warmup=2) for s in range(10)]
    assert lrs[:3] == [0.5, 1.0, 1.0]  # (s+1)/warmup, then the cosine starts at its peak
    assert lrs[3:] == pytest.approx([0.5 * (1 + torch.cos(torch.tensor(torch.pi * k / 8)).item())
                                     for k in range(1, 8)])
    assert [phase_lr(0.3, s, 4) for s in range(4)] == [phase_lr(0.3, s, 4, 0) for s in range(4)]


def test_reference_warmup_phases_and_their_scaling():
    assert [p.warmup_epochs for p in PS_SCHEDULE] == [5, 5, 0, 5, 0, 5]  # full, kernel, depth_2, expand_2
    assert [p.warmup_epochs for p in scaled(PS_SCHEDULE, 0.064)] == pytest.approx([0.32, 0.32, 0, 0.32, 0, 0.32])
    assert warmup_steps(Phase("k", 8, 0.1, warmup_epochs=0.32), 28) == 9
    with pytest.raises(ValueError, match="warmup_epochs=3"):
        Phase("k", 2, 0.1, warmup_epochs=3)


def test_train_phase_reaches_the_peak_at_the_end_of_warmup():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 3, generator=g), torch.randint(0, 2, (40,), generator=g)
    run = train_static(nn.Linear(3, 2), Batches(x, y, 10), epochs=3, lr=0.2, warmup_epochs=1.0)
    assert run["warmup_steps"] == 4
    assert run["history"][0]["lr"] == pytest.approx(0.2)  # last step of epoch 0 = last warm-up step
