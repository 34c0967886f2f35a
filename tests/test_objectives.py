import math

import pytest
import torch
from torch import nn

from experiments.objectives import Classification, LanguageModel, Regression


class Fixed(nn.Module):
    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, x):  # x holds row indices into the fixed outputs
        return self.out[x.long().flatten()]


def test_classification_metrics_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    y = torch.tensor([0, 0, 0])
    m = Classification().evaluate(Fixed(logits), torch.arange(3), y)
    assert m["acc"] == pytest.approx(2 / 3)
    expected = -(torch.log_softmax(logits, 1)[torch.arange(3), y]).mean()
    assert m["loss"] == pytest.approx(float(expected))


def test_language_model_bpc_is_nats_over_ln2():
    logits = torch.zeros(2, 5, 4)  # uniform over 4 symbols: exactly 2 bits per character
    m = LanguageModel().evaluate(Fixed(logits), torch.arange(2), torch.zeros(2, 5, dtype=torch.long))
    assert m["bpc"] == pytest.approx(2.0)
    assert m["loss"] == pytest.approx(math.log(4))


def test_regression_mse_and_batched_evaluation_agree():
    pred, y = torch.randn(10, 3), torch.randn(10, 3)
    obj = Regression()
    obj.eval_batch_size = 3  # uneven batches must still average exactly
    m = obj.evaluate(Fixed(pred), torch.arange(10), y)
    assert m["mse"] == pytest.approx(float(((pred - y) ** 2).mean()))
    assert m["loss"] == pytest.approx(m["mse"])
