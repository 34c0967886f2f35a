import pytest

from once_for_all.search import EvolutionSearch, InfeasibleConstraint
from once_for_all.space import ArchSpace
from tests.once_for_all.ofa_testutils import SPEC_1D

SPACE = ArchSpace.full(SPEC_1D)


def cost(cfg) -> float:
    """A FLOPs-like cost: grows with depth, kernel, expand and resolution."""
    per = max(SPACE.spec.depths)
    active = [b for b in range(len(cfg.kernels)) if b % per < cfg.depths[b // per]]
    return cfg.resolution * sum(cfg.kernels[b] * cfg.expands[b] for b in active)


def accuracy(cfgs):
    # the predictor likes exactly what costs more, so the best feasible sub-net sits at the constraint
    return [cost(c) ** 0.5 + 0.01 * c.kernels[0] for c in cfgs]


def search(constraints, seed=0, **kw):
    fns = {"flops": cost, "neg": lambda c: -cost(c)}
    return EvolutionSearch(SPACE, accuracy, fns, constraints, population=20, generations=15, seed=seed, **kw)


@pytest.mark.parametrize("seed", range(4))
def test_search_never_returns_a_subnet_over_its_constraint(seed):
    lo, hi = cost(SPACE.smallest()), cost(SPACE.largest())
    limit = lo + 0.3 * (hi - lo)
    scored = []

    def recording_accuracy(cfgs):  # every sub-net the predictor is asked about is a population member
        scored.extend(cfgs)
        return accuracy(cfgs)

    s = EvolutionSearch(SPACE, recording_accuracy, {"flops": cost}, {"flops": limit}, population=20, generations=15,
                        seed=seed)
    best, acc = s.run()
    assert cost(best) <= limit and acc == accuracy([best])[0]
    assert acc > accuracy([SPACE.smallest()])[0]  # it did search
    assert s.history == sorted(s.history)  # parents survive: the best never gets worse
    # checked from outside with the cost itself: no infeasible sub-net was ever scored (rejection sampling works)
    assert len(scored) >= 20 * 15 and max(cost(c) for c in scored) <= limit
    assert acc == max(accuracy(scored))  # the best of everything it scored


def test_two_constraints_both_hold():
    lo, hi = cost(SPACE.smallest()), cost(SPACE.largest())
    best, _ = search({"flops": lo + 0.4 * (hi - lo), "neg": -(lo + 0.2 * (hi - lo))}).run()
    assert lo + 0.2 * (hi - lo) <= cost(best) <= lo + 0.4 * (hi - lo)


def test_infeasible_constraint_fails_fast_naming_the_cheapest_cost():
    calls = []
    fns = {"flops": lambda c: calls.append(c) or cost(c)}
    s = EvolutionSearch(SPACE, accuracy, fns, {"flops": cost(SPACE.smallest()) - 1}, feasibility_samples=50)
    with pytest.raises(InfeasibleConstraint) as e:
        s.run()
    assert f"cheapest reachable flops is {cost(SPACE.smallest()):g}" in str(e.value)
    assert len(calls) <= 52  # the smallest, the largest and the bounded sample, nothing more


def test_jointly_infeasible_constraints_fail_fast():
    lo, hi = cost(SPACE.smallest()), cost(SPACE.largest())
    with pytest.raises(InfeasibleConstraint, match="not met together"):
        search({"flops": lo + 0.1 * (hi - lo), "neg": -(lo + 0.9 * (hi - lo))}).run()


def test_unknown_constraint_names_the_allowed_costs():
    with pytest.raises(ValueError, match=r"\['latency'\].*allowed: \['flops', 'neg'\]"):
        search({"latency": 1.0})
