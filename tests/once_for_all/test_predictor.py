import random

import pytest
import torch

from once_for_all.predictor import AccuracyPredictor, kendall_tau, rmse
from once_for_all.space import ArchSpace
from tests.once_for_all.ofa_testutils import SPEC_1D

SPACE = ArchSpace.full(SPEC_1D)


def data(n, seed):
    rng = random.Random(seed)
    enc = torch.stack([SPACE.encode(SPACE.sample(rng)) for _ in range(n)])
    w = torch.linspace(-1, 1, SPACE.encoding_size) * 0.02
    return enc, enc @ w + 0.8  # a linear target around 80 % accuracy


@pytest.mark.usefixtures("one_thread")
def test_fit_on_a_linear_target_reaches_low_rmse_and_high_tau():
    (x, y), (xt, yt) = data(300, 0), data(200, 1)
    p = AccuracyPredictor(SPACE.encoding_size, hidden=64)
    p.fit(x, y, seed=0, epochs=60, lr=1e-2, batch_size=300)
    ev = p.evaluate(xt, yt)
    assert ev["rmse"] < 0.2 * float(yt.std()) and ev["kendall_tau"] > 0.85, ev


def test_fit_is_a_function_of_the_seed():
    x, y = data(100, 0)
    a, b = AccuracyPredictor(SPACE.encoding_size, hidden=16), AccuracyPredictor(SPACE.encoding_size, hidden=16)
    a.fit(x, y, seed=3, epochs=3)
    b.fit(x, y, seed=3, epochs=3)
    assert torch.equal(a.predict(x), b.predict(x))
    assert float(a.base_acc) == float(y.float().mean())


def test_metrics_on_hand_cases():
    assert rmse([1.0, 2.0], [1.0, 4.0]) == 2 ** 0.5
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0 and kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
