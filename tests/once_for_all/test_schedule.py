import pytest

from once_for_all.schedule import PS_SCHEDULE, SCHEDULES, Phase, scaled, subnet_epochs
from tests.once_for_all.ofa_testutils import SPEC_1D

SPEC = SPEC_1D


def test_ps_schedule_opens_the_papers_values_in_order():
    spaces = {p.name: p.space(SPEC) for p in PS_SCHEDULE}
    assert list(spaces) == ["full", "kernel", "depth_1", "depth_2", "expand_1", "expand_2"]
    assert [p.subnets_per_step for p in PS_SCHEDULE] == [1, 1, 2, 2, 4, 4]
    assert [p.reorder_before for p in PS_SCHEDULE] == [False] * 4 + [True] * 2
    opened = [(s.kernel_sizes, s.depths, s.expand_ratios) for s in spaces.values()]
    assert opened == [((7,), (4,), (6,)), ((3, 5, 7), (4,), (6,)), ((3, 5, 7), (3, 4), (6,)),
                      ((3, 5, 7), (2, 3, 4), (6,)), ((3, 5, 7), (2, 3, 4), (4, 6)),
                      ((3, 5, 7), (2, 3, 4), (3, 4, 6))]
    assert all(s.resolutions == (12, 16) for s in spaces.values())  # resolution elastic throughout


@pytest.mark.parametrize("kwargs, words", [
    ({"kernel_sizes": (3, 9)}, ["'bad'", "kernel_sizes", "k_max=7"]),
    ({"expand_ratios": (5,)}, ["'bad'", "expand_ratios", "[5]", "[3, 4, 6]"]),
    ({"depths": (1, 2)}, ["'bad'", "depths", "[1]"]),
    ({"resolutions": (32,)}, ["'bad'", "resolutions", "[32]", "[12, 16]"]),
])
def test_phase_values_outside_the_spec_name_phase_and_key(kwargs, words):
    with pytest.raises(ValueError) as e:
        Phase("bad", 1, 0.1, **kwargs).space(SPEC)
    assert all(w in str(e.value) for w in words), str(e.value)


@pytest.mark.parametrize("d, words", [
    ({"name": "bad", "epochs": 1, "lr": 0.1, "width": (1,)}, ["'bad'", "width", "kernel_sizes"]),
    ({"name": "bad", "epochs": 1, "lr": 0.1, "depths": "some"}, ["'bad'", "depths", "'some'"]),
    ({"name": "bad", "epochs": -1, "lr": 0.1}, ["'bad'", "epochs=-1"]),
    ({"name": "bad", "epochs": 1, "lr": 0.1, "subnets_per_step": 0}, ["'bad'", "subnets_per_step=0"]),
    ({"name": "bad", "epochs": 1, "lr": 0.1, "kernel_sizes": []}, ["'bad'", "kernel_sizes", "empty"]),
])
def test_bad_phase_config_names_the_key(d, words):
    with pytest.raises(ValueError) as e:
        Phase.from_dict(d)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_from_dict_turns_lists_into_tuples():
    p = Phase.from_dict({"name": "k", "epochs": 2, "lr": 0.5, "kernel_sizes": [7, 3]})
    assert p.kernel_sizes == (7, 3) and p.space(SPEC).kernel_sizes == (3, 7)


def test_scaled_rounds_epochs_keeps_at_least_one_and_scales_lr():
    s = scaled(PS_SCHEDULE, epoch_scale=0.02, lr_scale=0.5)
    assert [p.epochs for p in s] == [4, 2, 1, 2, 1, 2]
    assert [p.lr for p in s] == [p.lr * 0.5 for p in PS_SCHEDULE]


@pytest.mark.parametrize("name", ["no_ps", "sandwich"])
def test_baselines_spend_the_same_subnet_passes_as_ps_with_everything_open(name):
    ps = subnet_epochs(SCHEDULES.get("progressive")(0.05))
    (phase,) = SCHEDULES.get(name)(0.05)
    assert 0 <= subnet_epochs([phase]) - ps < phase.subnets_per_step
    assert phase.space(SPEC).kernel_sizes == (3, 5, 7) and phase.space(SPEC).expand_ratios == (3, 4, 6)
    assert phase.space(SPEC).depths == (2, 3, 4) and phase.sampler == name


def test_no_ps_after_the_full_phase_distils_and_keeps_the_budget():
    ps = SCHEDULES.get("progressive")(0.05)
    full, rest = SCHEDULES.get("no_ps")(0.05, subnets_per_step=4, full_first=True)
    assert full == ps[0] and rest.distill and rest.lr == ps[1].lr
    assert 0 <= subnet_epochs([full, rest]) - subnet_epochs(ps) < 4


@pytest.mark.parametrize("name", ["no_ps", "no_ps_kd", "sandwich"])
def test_baselines_derive_from_a_given_ps_schedule(name):
    """The task passes its config's phases: a baseline matches their sub-net passes and lrs, not the paper's."""
    ps = [Phase("full", 7, 0.5), Phase("kernel", 3, 0.2, kernel_sizes="all", subnets_per_step=2)]
    derived = SCHEDULES.get(name)(ps=ps)
    per_step = derived[-1].subnets_per_step
    assert 0 <= subnet_epochs(derived) - subnet_epochs(ps) < per_step
    assert derived[-1].lr == (0.2 if name == "no_ps_kd" else 0.5)
    assert (derived[0] == ps[0]) == (name == "no_ps_kd")  # only no_ps_kd keeps the full-net phase first
    if name != "sandwich":  # sandwich distils in place from the largest sub-net
        assert derived[-1].distill == (name == "no_ps_kd")
