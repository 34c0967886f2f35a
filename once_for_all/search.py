"""Evolutionary search for the most accurate sub-net under one or several cost constraints (OFA's EvolutionFinder).

Every loop is bounded: sampling, mutation and crossover retry at most `max_tries` times and then fall back to a
feasible parent; before searching, the smallest sub-net and a bounded random sample give the cheapest reachable
cost of every constraint, and a constraint below it raises `InfeasibleConstraint` naming that cost (OFA's own
rejection sampling loops forever there). Every config the search keeps is feasible, so the result is too.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .space import ArchSpace, SubnetConfig

CostFn = Callable[[SubnetConfig], float]
PredictorFn = Callable[[Sequence[SubnetConfig]], Sequence[float]]  # batched: configs -> predicted accuracies


class InfeasibleConstraint(ValueError):
    """No reachable sub-net meets the constraints; the message names the cheapest reachable cost."""


@dataclass
class EvolutionSearch:
    """OFA defaults: population 100, parents 25 %, mutation ratio 0.5, mutate prob 0.1 (0.5 for resolution),
    500 generations. `predictor_fn` scores a list of configs at once; `constraints[k]` bounds `cost_fns[k]`."""

    space: ArchSpace
    predictor_fn: PredictorFn
    cost_fns: dict[str, CostFn]
    constraints: dict[str, float]
    population: int = 100
    parent_ratio: float = 0.25
    mutation_ratio: float = 0.5
    mutate_prob: float = 0.1
    resolution_mutate_prob: float = 0.5
    generations: int = 500
    seed: int = 0
    max_tries: int = 100  # per sampled / mutated / crossed-over child
    feasibility_samples: int = 200  # random sub-nets costed (besides the smallest) by the reachability check
    history: list[float] = field(default_factory=list, init=False)  # best predicted accuracy per generation

    def __post_init__(self) -> None:
        if not self.constraints:
            raise ValueError("EvolutionSearch: constraints is empty; give at least one {cost name: limit}")
        missing = sorted(set(self.constraints) - set(self.cost_fns))
        if missing:
            raise ValueError(f"EvolutionSearch: constraint(s) {missing} have no cost function; "
                             f"allowed: {sorted(self.cost_fns)}")
        for key, lo in (("population", 2), ("generations", 0), ("max_tries", 1)):
            if getattr(self, key) < lo:
                raise ValueError(f"EvolutionSearch: {key}={getattr(self, key)!r}; allowed: >= {lo}")
        for key in ("parent_ratio", "mutation_ratio", "mutate_prob", "resolution_mutate_prob"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"EvolutionSearch: {key}={getattr(self, key)!r}; allowed: 0..1")
        self._costs: dict[SubnetConfig, dict[str, float]] = {}

    def costs(self, cfg: SubnetConfig) -> dict[str, float]:
        if cfg not in self._costs:
            self._costs[cfg] = {k: float(self.cost_fns[k](cfg)) for k in self.constraints}
        return self._costs[cfg]

    def feasible(self, cfg: SubnetConfig) -> bool:
        c = self.costs(cfg)
        return all(c[k] <= limit for k, limit in self.constraints.items())

    def check_reachable(self, rng: random.Random) -> list[SubnetConfig]:
        """The feasible configs among the smallest sub-net and a bounded sample; InfeasibleConstraint if none."""
        ends = [self.space.smallest(), self.space.largest()]  # the cheapest for costs growing / shrinking with size
        pool = ends + [self.space.sample(rng) for _ in range(self.feasibility_samples)]
        cheapest = {k: min(self.costs(c)[k] for c in pool) for k in self.constraints}
        over = {k: v for k, v in cheapest.items() if v > self.constraints[k]}
        if over:
            k = next(iter(over))
            raise InfeasibleConstraint(
                f"constraint {k} <= {self.constraints[k]:g} is infeasible: the cheapest reachable {k} is "
                f"{over[k]:g} (smallest and largest sub-net and {self.feasibility_samples} samples; smallest: "
                f"{self.space.smallest()})")
        feasible = [c for c in pool if self.feasible(c)]
        if not feasible:
            raise InfeasibleConstraint(
                f"constraints {self.constraints} are not met together by the smallest, the largest or any of "
                f"{self.feasibility_samples} samples; cheapest reachable per cost: {cheapest}")
        return feasible

    def _child(self, make: Callable[[], SubnetConfig], fallback: SubnetConfig) -> SubnetConfig:
        for _ in range(self.max_tries):
            cfg = make()
            if self.feasible(cfg):
                return cfg
        return fallback

    def run(self) -> tuple[SubnetConfig, float]:
        """(best feasible config, its predicted accuracy)."""
        rng = random.Random(self.seed)
        seeds = self.check_reachable(rng)
        pop = list(seeds[:self.population])
        while len(pop) < self.population:
            parent = rng.choice(seeds)
            pop.append(self._child(lambda: self.space.sample(rng), parent))
        n_parents = max(1, round(self.population * self.parent_ratio))
        n_mutate = round(self.population * self.mutation_ratio)
        scored = self._score(pop)
        self.history = [scored[0][1]]
        for _ in range(self.generations):
            parents = [c for c, _ in scored[:n_parents]]
            children = list(parents)
            for _ in range(n_mutate):
                p = rng.choice(parents)
                children.append(self._child(
                    lambda p=p: self.space.mutate(p, rng, self.mutate_prob, self.resolution_mutate_prob), p))
            while len(children) < self.population:
                a, b = rng.choice(parents), rng.choice(parents)
                children.append(self._child(lambda a=a, b=b: self.space.crossover(a, b, rng), a))
            scored = self._score(children)
            self.history.append(scored[0][1])
        best, acc = scored[0]
        assert self.feasible(best)  # by construction: only feasible configs enter a population
        return best, acc

    def _score(self, pop: list[SubnetConfig]) -> list[tuple[SubnetConfig, float]]:
        accs = [float(a) for a in self.predictor_fn(pop)]
        order = sorted(range(len(pop)), key=lambda i: -accs[i])  # stable: ties keep population order
        return [(pop[i], accs[i]) for i in order]
