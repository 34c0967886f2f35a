import random

import pytest
import torch

from once_for_all.predictor import AccuracyPredictor, PredictorEnsemble, kendall_tau, rmse
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


def test_sigmoid_link_starts_at_the_mean_and_stays_inside_0_1():
    x, y = data(100, 0)
    p = AccuracyPredictor(SPACE.encoding_size, hidden=16, link="sigmoid")
    p.fit(x, y, seed=0, epochs=0)  # no steps: the offset alone
    assert float(p.base_acc) == pytest.approx(float(torch.logit(y.double().mean())), abs=1e-6)
    p.mlp[-1].weight.data.zero_()
    assert torch.allclose(p.predict(x), y.float().mean().expand(len(x)), atol=1e-6)  # zero logit: the mean
    p.mlp[-1].weight.data.fill_(1e3)  # an MLP output far past any target: identity would give ~1e5
    pred = p.predict(x * 10)
    assert float(pred.max()) <= 1.0 and float(pred.min()) >= 0.0
    with pytest.raises(ValueError, match="fractions in"):
        p.fit(x, y * 100, seed=0, epochs=1)  # accuracies in percent
    with pytest.raises(ValueError, match="link='relu'"):
        AccuracyPredictor(4, link="relu")


def test_ensemble_mean_std_and_score_on_hand_set_members():
    ens = PredictorEnsemble(SPACE.encoding_size, members=3, hidden=4)
    for member, offset in zip(ens.members, (0.7, 0.8, 0.9)):
        member.mlp[-1].weight.data.zero_()  # each member predicts its offset everywhere
        member.base_acc.fill_(offset)
    x, _ = data(5, 0)
    assert torch.allclose(ens.predict(x), torch.full((5,), 0.8))
    std = (2 * 0.1 ** 2 / 3) ** 0.5  # population std of (0.7, 0.8, 0.9)
    assert torch.allclose(ens.std(x), torch.full((5,), std))
    assert torch.allclose(ens.score(x, penalty=2.0), torch.full((5,), 0.8 - 2 * std))
    cfgs = [SPACE.sample(random.Random(i)) for i in range(3)]
    assert ens.config_fn(SPACE, 2.0)(cfgs) == pytest.approx([0.8 - 2 * std] * 3)


def test_one_member_ensemble_is_the_single_predictor_and_loads_its_old_state():
    x, y = data(100, 0)
    single, ens = AccuracyPredictor(SPACE.encoding_size, hidden=16), PredictorEnsemble(SPACE.encoding_size, hidden=16)
    single.fit(x, y, seed=3, epochs=3)
    ens.fit(x, y, seed=3, epochs=3)
    assert torch.equal(single.predict(x), ens.predict(x)) and float(ens.std(x).abs().max()) == 0.0
    fresh = PredictorEnsemble(SPACE.encoding_size, hidden=16)
    fresh.load_state_dict(single.state_dict())  # a predictor.pt written before ensembles existed
    assert torch.equal(fresh.predict(x), single.predict(x))
    members = PredictorEnsemble(SPACE.encoding_size, members=2, hidden=16)
    members.fit(x, y, seed=3, epochs=3)  # member i is fitted from seed + i
    assert torch.equal(members.members[0].predict(x), single.predict(x))
    assert not torch.equal(members.members[1].predict(x), single.predict(x))


def test_bootstrap_members_fit_their_own_seeded_resamples():
    x, y = data(50, 0)
    ens = PredictorEnsemble(SPACE.encoding_size, members=3, hidden=8, bootstrap=True)
    ens.fit(x, y, seed=4, epochs=0)  # no steps: each member's offset is the mean of the rows it fitted
    for i, member in enumerate(ens.members):
        rows = torch.randint(0, 50, (50,), generator=torch.Generator().manual_seed(4 + i))
        assert len(set(rows.tolist())) < 50  # drawn with replacement: some rows left out
        assert float(member.base_acc) == float(y[rows].float().mean())
    plain = PredictorEnsemble(SPACE.encoding_size, members=2, hidden=8)
    assert torch.equal(plain.resample(50, 1, 4), torch.arange(50))
