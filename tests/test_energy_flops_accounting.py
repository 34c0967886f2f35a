"""The unit's accounting in the shared loop: disjoint `train` and `eval` energy (periodic evaluations are not
training energy; the unit total is their sum), and MoE training FLOPs as executed beside the nominal count."""

import pytest
import torch

from experiments.config import OptimCfg
from experiments.data import Splits
from experiments.objectives import OBJECTIVES, Classification
from experiments.tasks.moe import MoEObjective
from experiments.trainer import energy_row, fit
from meter import Meter, MeterConfig
from meter.flops import FlopCache, count_flops
from sparse_moe.models import MoEConfig, RegressionMLPConfig, build_model
from tests.helpers import HandCounter, install_hand_counter

TRAIN_J, EVAL_J = 1.0, 1000.0  # what one step and one evaluation "cost" on the hand-driven counter


class Costed(Classification):
    """Classification whose every training step and evaluation advance the counter by a known amount."""

    def loss(self, model, xb, yb):
        HandCounter.joules += TRAIN_J
        return super().loss(model, xb, yb)

    def evaluate(self, model, x, y):
        HandCounter.joules += EVAL_J / 2  # called once per split (val, test)
        return super().evaluate(model, x, y)


class NullLogger:
    log_every = 0

    def log(self, row, step=None):
        pass


def _data(n=240):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 12, generator=g)
    y = x[:, :3].argmax(1)
    return Splits(x[:160], y[:160], x[160:200], y[160:200], x[200:], y[200:])


def test_train_energy_excludes_evaluation_and_the_total_is_their_sum(monkeypatch):
    install_hand_counter(monkeypatch)
    optim = OptimCfg(name="sgd", lr=0.1, batch_size=20, epochs=3)  # 8 steps per epoch: evaluations at 8, 16, 24
    torch.manual_seed(0)
    model = torch.nn.Linear(12, 3)
    with Meter(MeterConfig(sources=["counter"], intensity_g_per_kwh=100.0, sample_period_s=60)) as meter:
        result = fit(model, _data(), optim, seed=0, total_steps=24, objective=Costed(), meter=meter,
                     logger=NullLogger(), tag="t", progress=False)
    assert len(result.history) == 3
    assert result.measurement_train.joules == pytest.approx(24 * TRAIN_J)
    assert result.measurement_eval.joules == pytest.approx(3 * EVAL_J)
    assert result.measurement.joules == pytest.approx(24 * TRAIN_J + 3 * EVAL_J)
    row = energy_row(result)
    assert row["energy/train_joules"] == pytest.approx(24 * TRAIN_J)
    assert row["energy/eval_joules"] == pytest.approx(3 * EVAL_J)
    assert row["energy/joules"] == pytest.approx(row["energy/train_joules"] + row["energy/eval_joules"])
    assert row["time/train_s"] + row["time/eval_s"] == pytest.approx(row["time/wall_s"])
    assert result.flops_train_executed == result.flops_train  # a dense model executes what was counted


def _moe(capacity_factor):
    torch.manual_seed(0)
    cfg = RegressionMLPConfig(in_dim=8, out_dim=2, d_model=16, d_ff=32, num_blocks=2,
                              moe=MoEConfig(num_experts=4, top_k=1, router="switch", capacity_factor=capacity_factor))
    return build_model("regression_mlp", cfg), MoEObjective(OBJECTIVES.get("regression")())


@pytest.mark.parametrize("capacity_factor", [1.0, None])
def test_moe_executed_step_flops_follow_each_steps_routing(capacity_factor):
    """Counted once per batch shape (the first batch's routing), corrected per step by the rows the dispatch
    executed: equal to counting that very step, while the nominal figure stays the first batch's."""
    model, objective = _moe(capacity_factor)
    cache, g = FlopCache(), torch.Generator().manual_seed(1)
    batches = [(torch.randn(32, 8, generator=g) * s, torch.randn(32, 2, generator=g)) for s in (1, 3, 0.3, 1)]
    nominal = objective.step_flops(model, *batches[0], cache)
    executed = set()
    for xb, yb in batches:
        objective.loss(model, xb, yb)  # the training forward: the dispatch reports its rows
        truth = count_flops(model, (xb,), lambda out, yb=yb: objective.loss_fn(out[0], yb)).total
        assert objective.executed_step_flops(model, xb, yb, cache) == truth
        assert objective.step_flops(model, xb, yb, cache) == nominal
        executed.add(truth)
    assert (len(executed) > 1) == (capacity_factor is not None)  # capacity drops change the work; dropless not
