"""OFA's accuracy predictor: an MLP over `ArchSpace.encode` (one-hot kernel/expand per block, one-hot resolution).

3 x (Linear 400 + ReLU) -> Linear(400 -> 1, no bias) + a fixed base offset (the mean training target), as
mit-han-lab/once-for-all's `AccuracyPredictor` (`link="identity"`). Two additions against the optimiser's curse (an
evolutionary search over a regressor finds the configs the regressor over-predicts most):
- `link="sigmoid"`: the MLP predicts a logit, offset by the logit of the mean target, so a predicted accuracy (a
  fraction) stays inside (0, 1); the identity MLP extrapolates past 100 % on configs it never saw.
- `PredictorEnsemble`: K predictors from K seeds (a deep ensemble), optionally each on a bootstrap resample; the
  search can rank by mean - penalty x std, a lower confidence bound that distrusts configs the members disagree on.
`fit` is a pure function of (data, seed).
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


LINKS = ("identity", "sigmoid")


def held_out_metrics(pred, acc) -> dict[str, float]:
    return {"rmse": rmse(pred, acc), "kendall_tau": kendall_tau(pred, acc)}


class AccuracyPredictor(nn.Module):
    def __init__(self, in_features: int, hidden: int = 400, num_layers: int = 3, link: str = "identity") -> None:
        super().__init__()
        if link not in LINKS:
            raise ValueError(f"AccuracyPredictor: link={link!r}; allowed: {', '.join(LINKS)}")
        self.link = link
        layers: list[nn.Module] = []
        for i in range(num_layers):
            layers += [nn.Linear(in_features if i == 0 else hidden, hidden), nn.ReLU()]
        layers.append(nn.Linear(hidden if num_layers else in_features, 1, bias=False))
        self.mlp = nn.Sequential(*layers)
        self.register_buffer("base_acc", torch.zeros(()))  # added before the link: the mean target (or its logit)

    def forward(self, enc: torch.Tensor) -> torch.Tensor:
        """enc [N, in_features] -> predicted accuracy [N] (a fraction in (0, 1) under the sigmoid link)."""
        out = self.mlp(enc).squeeze(-1) + self.base_acc
        return torch.sigmoid(out) if self.link == "sigmoid" else out

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
            mean = float(acc.mean())
            if self.link == "sigmoid":
                if not 0.0 < mean < 1.0 or float(acc.min()) < 0.0 or float(acc.max()) > 1.0:
                    raise ValueError(f"fit: the sigmoid link needs accuracies as fractions in [0, 1] with a mean "
                                     f"inside (0, 1); got min {float(acc.min())}, max {float(acc.max())}")
                mean = float(torch.logit(torch.tensor(mean, dtype=torch.float64)))
            self.base_acc.fill_(mean)
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
        return held_out_metrics(self.predict(enc).numpy(), acc)

    def config_fn(self, space: ArchSpace) -> Callable[[Sequence[SubnetConfig]], list[float]]:
        """A batched predictor over configs, as `EvolutionSearch` takes it."""
        def fn(cfgs: Sequence[SubnetConfig]) -> list[float]:
            return self.predict(torch.stack([space.encode(c) for c in cfgs])).tolist()

        return fn


class PredictorEnsemble(nn.Module):
    """K `AccuracyPredictor`s fitted to the same data from seeds seed, seed+1, ...; K=1 is the single predictor.

    `predict` is the members' mean; `std` their (population) standard deviation; `score` = mean - penalty x std is
    what the search ranks by (penalty 0: the mean, OFA's behaviour)."""

    def __init__(self, in_features: int, members: int = 1, link: str = "identity", bootstrap: bool = False,
                 **kw) -> None:
        super().__init__()
        if members < 1:
            raise ValueError(f"PredictorEnsemble: members={members}; allowed: >= 1")
        self.members = nn.ModuleList(AccuracyPredictor(in_features, link=link, **kw) for _ in range(members))
        self.bootstrap = bootstrap

    def resample(self, n: int, member: int, seed: int) -> torch.Tensor:
        """The training rows member `member` fits: all n, or with `bootstrap` n drawn with replacement (seeded)."""
        if not self.bootstrap:
            return torch.arange(n)
        return torch.randint(0, n, (n,), generator=torch.Generator().manual_seed(seed + member))

    def fit(self, enc: torch.Tensor, acc: torch.Tensor, *, seed: int = 0, **kw) -> list[list[float]]:
        """Member i from seed + i. Without bootstrap every member fits every row, so at a training row they all
        agree (an ensemble std of ~0 there, which a lower-confidence-bound search then favours); with it, each
        member misses about a third of the rows, and the spread is honest at measured sub-nets too."""
        rows = [self.resample(len(acc), i, seed) for i in range(len(self.members))]
        return [m.fit(enc[r], acc[r], seed=seed + i, **kw) for i, (m, r) in enumerate(zip(self.members, rows))]

    @torch.no_grad()
    def mean_std(self, enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """enc [N, F] -> the members' mean prediction [N] and their population std [N] (0 with one member)."""
        preds = torch.stack([m.predict(enc) for m in self.members])  # [K, N]
        return preds.mean(0), preds.std(0, unbiased=False)

    def predict(self, enc: torch.Tensor) -> torch.Tensor:
        return self.mean_std(enc)[0]

    def std(self, enc: torch.Tensor) -> torch.Tensor:
        return self.mean_std(enc)[1]

    def score(self, enc: torch.Tensor, penalty: float = 0.0) -> torch.Tensor:
        mean, std = self.mean_std(enc)
        return mean - penalty * std

    def evaluate(self, enc: torch.Tensor, acc) -> dict[str, float]:
        """RMSE and Kendall tau of the mean prediction on held-out data."""
        return held_out_metrics(self.predict(enc).numpy(), acc)

    def config_fn(self, space: ArchSpace, penalty: float = 0.0) -> Callable[[Sequence[SubnetConfig]], list[float]]:
        """A batched fitness over configs for `EvolutionSearch`: mean - penalty x std."""
        def fn(cfgs: Sequence[SubnetConfig]) -> list[float]:
            return self.score(torch.stack([space.encode(c) for c in cfgs]), penalty).tolist()

        return fn

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        """Also loads a single `AccuracyPredictor`'s state (jobs saved before ensembles) into a 1-member ensemble."""
        if len(self.members) == 1 and state and not any(k.startswith("members.") for k in state):
            state = {f"members.0.{k}": v for k, v in state.items()}
        return super().load_state_dict(state, strict=strict, assign=assign)
