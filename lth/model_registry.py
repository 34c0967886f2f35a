"""The model registry and what every registered model is: `MODELS`, `PrunableModel`, `init_weights`.

Model files (lth/models.py, lth/convnets.py, lth/resnet.py) import this module and register into `MODELS`;
`lth/__init__.py` imports them all, so the registry is full whichever module a caller imports first.
Every factory is called as `factory(in_features, num_classes, hidden=None, init=...)`.
"""

from __future__ import annotations

from torch import nn

from lth.ticket import PRUNABLE_TYPES, prunable_names
from meter.registry import Registry

MODELS: Registry = Registry("lth model")
INITS = ("glorot_normal", "kaiming_normal", "torch_default")


class PrunableModel(nn.Module):
    """Base class: weights of Linear/Conv layers are prunable; the last such layer is the output layer."""

    def prunable_names(self) -> list[str]:
        return prunable_names(self)

    def output_layer_name(self) -> str:
        return self.prunable_names()[-1]


def init_weights(model: nn.Module, scheme: str) -> None:
    """Re-initialise every Linear/Conv weight by `scheme` (one of INITS) and zero its bias."""
    inits = {
        "glorot_normal": nn.init.xavier_normal_,
        "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
        "torch_default": None,
    }
    if scheme not in inits:
        raise ValueError(f"model.init={scheme!r} is not one of {sorted(inits)}")
    if inits[scheme] is None:
        return
    for m in model.modules():
        if isinstance(m, PRUNABLE_TYPES):
            inits[scheme](m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build_model(name: str, in_features: int, num_classes: int, **kwargs) -> nn.Module:
    return MODELS.get(name)(in_features=in_features, num_classes=num_classes, **kwargs)
