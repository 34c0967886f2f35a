"""The output layer (pruned at `output_rate`) is the layer whose output is the model's output, found from one
forward pass or named; registration order does not decide it, and an ambiguous model is refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lth import LotteryTicket
from lth.output_layer import find_output_layer

X = torch.zeros(2, 8)


class HeadFirst(nn.Module):
    """Registers its head before its body: the last registered Linear is a hidden layer."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(16, 3)
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU())

    def forward(self, x):
        return torch.log_softmax(self.head(self.body(x)).view(x.shape[0], -1), dim=1)  # ops after the head


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(8, 3), nn.Linear(8, 3)

    def forward(self, x):
        return self.a(x) + self.b(x)


class SkipAroundHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden, self.head = nn.Linear(8, 3), nn.Linear(3, 3)

    def forward(self, x):
        h = torch.relu(self.hidden(x))
        return self.head(h) + h


class HuggingFaceStyle(nn.Module):
    """Returns an output object with `.logits` and dropout on the way (the forward pass runs in eval mode)."""

    def __init__(self) -> None:
        super().__init__()
        self.classifier, self.encoder, self.drop = nn.Linear(16, 3), nn.Linear(8, 16), nn.Dropout(0.5)

    def forward(self, x):
        return type("Out", (), {"logits": self.classifier(self.drop(self.encoder(x)))})()


def test_found_from_the_forward_pass_not_registration_order():
    model = HeadFirst()
    assert [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1] == "body.2"  # the old guess
    assert find_output_layer(model, X) == "head.weight"
    assert find_output_layer(nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2)), X) == "2.weight"
    assert find_output_layer(HuggingFaceStyle(), X) == "classifier.weight"


def test_the_forward_pass_changes_nothing():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 2)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 8)
    rng = torch.get_rng_state()
    find_output_layer(model, x)
    assert model.training and torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics included


@pytest.mark.parametrize("model, problem", [(TwoHeads(), r"\['a', 'b'\] all feed it"),
                                            (SkipAroundHead(), r"\['head', 'hidden'\] all feed it"),
                                            (nn.Sequential(nn.ReLU()), "no Linear/Conv layer produces it")])
def test_ambiguous_or_absent_output_layer_is_refused(model, problem):
    with pytest.raises(ValueError, match=problem + ".*output_layer="):
        find_output_layer(model, X)


def test_output_rate_prunes_the_real_head():
    torch.manual_seed(0)
    ticket = LotteryTicket(HeadFirst(), rates=0.2, output_rate=0.5, example_input=X)
    mask = ticket.prune()
    assert int(mask["head.weight"].sum()) == 48 - 24  # at output_rate
    assert int(mask["body.2.weight"].sum()) == 256 - round(0.2 * 256)  # a hidden layer, at the default rate
    named = LotteryTicket(HeadFirst(), rates=0.2, output_rate=0.5, output_layer="head")
    assert named.rates.per_layer == {"head.weight": 0.5}


def test_output_rate_needs_an_example_or_a_name():
    with pytest.raises(ValueError, match="example_input=.*output_layer="):
        LotteryTicket(HeadFirst(), output_rate=0.1)
    with pytest.raises(ValueError, match="output_layer='nope'"):
        LotteryTicket(HeadFirst(), output_rate=0.1, output_layer="nope")
    with pytest.raises(ValueError, match="all feed it"):
        LotteryTicket(TwoHeads(), output_rate=0.1, example_input=X)
