"""OFA's accuracy predictor: an MLP over `ArchSpace.encode` (one-hot kernel/expand per block, one-hot resolution).

3 x (Linear 400 + ReLU) -> Linear(400 -> 1, no bias) + a fixed base-accuracy offset (the mean training target),
as mit-han-lab/once-for-all's `AccuracyPredictor`. `fit` is a pure function of (data, seed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.stats import kendalltau
from torch import nn

from .space import ArchSpace, SubnetConfig


def rmse(pred, target) -> float:
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def kendall_tau(pred, target) -> float:
    return float(kendalltau(np.asarray(pred), np.asarray(target)).statistic)


class AccuracyPredictor(nn.Module):
    def __init__(self, in_features: int, hidden: int = 400, num_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(num_layers):
            layers += [nn.Linear(in_features if i == 0 else hidden, hidden), nn.ReLU()]
        layers.append(nn.Linear(hidden if num_layers else in_features, 1, bias=False))
        self.mlp = nn.Sequential(*layers)
        self.register_buffer("base_acc", torch.zeros(()))

    def forward(self, enc: torch.Tensor) -> torch.Tensor:
        """enc [N, in_features] -> predicted accuracy [N]."""
        return self.mlp(enc).squeeze(-1) + self.base_acc

    def fit(self, enc: torch.Tensor, acc: torch.Tensor, *, seed: int = 0, epochs: int = 300, lr: float = 1e-3,
            batch_size: int = 256, weight_decay: float = 0.0) -> list[float]:
        """Re-initialise (seeded) and fit by MSE with Adam; enc [N, F], acc [N]. Returns the loss per epoch."""
        enc, acc = enc.float(), acc.float()
        if enc.ndim != 2 or acc.shape != enc.shape[:1]:
            raise ValueError(f"fit: enc must be [N, F] and acc [N]; got {tuple(enc.shape)} and {tuple(acc.shape)}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    m.reset_parameters()
            self.base_acc.fill_(float(acc.mean()))
            opt = torch.optim.Adam(self.parameters(), lr=lr, weight_decay=weight_decay)
            losses = []
            self.train()
            for _ in range(epochs):
                order, total = torch.randperm(len(enc)), 0.0
                for i in range(0, len(enc), batch_size):
                    idx = order[i:i + batch_size]
                    loss = torch.mean((self(enc[idx]) - acc[idx]) ** 2)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                losses.append(total / len(enc))
        self.eval()
        return losses

    @torch.no_grad()
    def predict(self, enc: torch.Tensor) -> torch.Tensor:
        return self(enc.float())

    def evaluate(self, enc: torch.Tensor, acc) -> dict[str, float]:
        """RMSE (units of `acc`) and Kendall tau of predictions on held-out data."""
        pred = self.predict(enc).numpy()
        return {"rmse": rmse(pred, acc), "kendall_tau": kendall_tau(pred, acc)}

    def config_fn(self, space: ArchSpace) -> Callable[[Sequence[SubnetConfig]], list[float]]:
        """A batched predictor over configs, as `EvolutionSearch` takes it."""
        def fn(cfgs: Sequence[SubnetConfig]) -> list[float]:
            return self.predict(torch.stack([space.encode(c) for c in cfgs])).tolist()

        return fn
