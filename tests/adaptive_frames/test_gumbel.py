import math

import pytest
import torch

from adaptive_frames.gumbel import gumbel_softmax_st, straight_through, temperature
from adaptive_frames.losses import efficiency_term
from tests.adaptive_frames.af_testutils import small_model


def test_st_gumbel_forward_is_one_hot_and_backward_is_soft():
    torch.manual_seed(0)
    logits = torch.randn(64, 7, requires_grad=True)
    y = gumbel_softmax_st(logits, tau=0.7)
    assert set(y.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(y.detach().sum(dim=1), torch.ones(64))
    w = torch.randn(7)
    (y * w).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    # each row's gradient is that of a softmax: sums to zero over actions
    assert torch.allclose(logits.grad.sum(dim=1), torch.zeros(64), atol=1e-5)


def test_straight_through_gradient_equals_soft_gradient():
    soft = torch.softmax(torch.randn(5, 4), dim=1).requires_grad_(True)
    w = torch.randn(5, 4)
    (straight_through(soft) * w).sum().backward()
    assert torch.allclose(soft.grad, w)


def test_gumbel_samples_follow_the_softmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1]])).expand(20000, 3)
    freq = gumbel_softmax_st(logits, tau=1.0, generator=g).mean(dim=0)
    assert torch.allclose(freq, torch.tensor([0.6, 0.3, 0.1]), atol=0.015)


def test_temperature_schedule():
    assert temperature(0, 5.0, 0.045) == 5.0
    assert temperature(10, 5.0, 0.045) == pytest.approx(5.0 * math.exp(-0.45))
    with pytest.raises(ValueError, match="tau0"):
        temperature(1, 0.0, 0.1)


def test_policy_gets_nonzero_gradients_from_task_and_cost_terms():
    model = small_model()
    clips = torch.randn(4, 6, 1, 16, 16)
    for term in ("task", "cost"):
        model.zero_grad()
        out = model.forward_train(clips, tau=1.0, generator=torch.Generator().manual_seed(1))
        assert set(out.decisions.detach().sum(-1).unique().tolist()) <= {0.0, 1.0}
        loss = (torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2, 0])) if term == "task"
                else efficiency_term(out.flops, 6, model.costs().top))
        loss.backward()
        grads = [p.grad for p in model.policy.parameters()]
        assert all(g is not None for g in grads), term
        assert sum(float(g.abs().sum()) for g in grads) > 0, term
