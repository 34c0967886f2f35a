"""A model defined outside leanlab, for `model=custom model._target_=tests.lth.custom_net.TinyNet`."""

from torch import nn


class TinyNet(nn.Module):
    """x: [B, C, H, W] -> logits [B, num_classes]."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 8) -> None:
        super().__init__()
        self.hidden = hidden
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU())
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.out(self.body(x))
