"""`LotteryTicket`: iterative magnitude pruning with rewinding for any `nn.Module` in any training loop.

    ticket = LotteryTicket(model, strategy="magnitude_layerwise", rates=0.2, output_rate=0.1, rewind="500it")
    for level in range(levels + 1):
        if level:
            ticket.prune()   # next level's mask from the trained weights
            ticket.rewind()  # weights <- the snapshot, mask applied
        for step, batch in ...:          # your loop
            if level == 0 and step == ticket.rewind_step:
                ticket.snapshot(step, optimizer)
            ...; optimizer.step(); ticket.apply()   # pruned weights stay zero

Prunable weights are inferred (weights of Linear and Conv layers, biases never) or chosen by glob patterns over
parameter names (`include`), minus `exclude` patterns. The output layer (for `output_rate`) is named
(`output_layer`) or found from one forward pass of `example_input` (lth.output_layer), never guessed from the
order modules were registered in. The mask is kept beside the
weights (no `weight_orig`, no hooks), so `model.state_dict()` stays plain.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Sequence

import torch
from torch import nn

from lth.masks import Mask, is_subset, mask_applier, ones_mask
from lth.output_layer import PRUNABLE_TYPES, find_output_layer
from lth.pruning import STRATEGIES, PruneRates
from lth.rewind import RewindPoint

__all__ = ["PRUNABLE_TYPES", "LotteryTicket", "output_weight", "prunable_names"]


def prunable_names(model: nn.Module, include: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> list[str]:
    """Weights to prune, in `named_parameters` order: those matching `include` globs (default: every Linear/Conv
    weight), minus those matching `exclude` globs. Raises when nothing is left."""
    if include is None:
        names = [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]
    else:
        names = [n for n, _ in model.named_parameters() if any(fnmatch.fnmatch(n, p) for p in include)]
    names = [n for n in names if not any(fnmatch.fnmatch(n, p) for p in exclude)]
    if not names:
        raise ValueError(f"no prunable weights left (include={include}, exclude={list(exclude)}); parameters: "
                         f"{[n for n, _ in model.named_parameters()][:20]}")
    return names


def output_weight(model: nn.Module, output_layer: str | None, example_input: torch.Tensor | None) -> str:
    """The output layer's weight name: `output_layer` (module or weight name) checked against the model, else found
    from the forward pass of `example_input`; ValueError when neither is given or the name is not a weight."""
    if output_layer is not None:
        params = dict(model.named_parameters())
        for name in (output_layer, f"{output_layer}.weight"):
            if name in params:
                return name
        raise ValueError(f"output_layer={output_layer!r} is not a module with a weight of this model; modules: "
                         f"{[n.rsplit('.', 1)[0] for n in prunable_names(model)][:20]}")
    if example_input is None:
        raise ValueError("output_rate needs the output layer: pass example_input=<one input batch> (found from the "
                         "forward pass) or output_layer=<module name>")
    return find_output_layer(model, example_input)


def _clone(state):
    """A deep copy of a (model or optimizer) state dict: later steps update the live tensors in place."""
    return copy.deepcopy(state)


class LotteryTicket:
    """Masks, pruning levels and the rewind snapshot of one model. Loop-agnostic: call the methods from any loop.

    `rates`: the fraction of the remaining weights pruned per level (float), or a `PruneRates`; `output_rate`
    prunes the output layer at its own rate (Frankle & Carbin: 0.1 for LeNet): the layer `output_layer` names (a
    module or weight name), else the one whose output is the model's output on `example_input` (one batch).
    `rewind`: the step whose weights retraining restarts from (int, or "500it" / "2ep" with
    `iterations_per_epoch`). `names`: explicit prunable weights (overrides include/exclude).
    """

    def __init__(self, model: nn.Module, strategy: str = "magnitude_layerwise", rates: float | PruneRates = 0.2,
                 *, output_rate: float | None = None, rewind: int | str = 0, iterations_per_epoch: int | None = None,
                 include: Sequence[str] | None = None, exclude: Sequence[str] = (),
                 names: Sequence[str] | None = None, output_layer: str | None = None,
                 example_input: torch.Tensor | None = None) -> None:
        self.model = model
        self.strategy = strategy
        self._prune_fn = STRATEGIES.get(strategy)
        names = list(names) if names is not None else prunable_names(model, include, exclude)
        rates = rates if isinstance(rates, PruneRates) else PruneRates(float(rates))
        if output_rate is not None:  # the output layer is pruned at its own rate, excluded or not
            output = output_weight(model, output_layer, example_input)
            rates = PruneRates(rates.default, {**rates.per_layer, output: output_rate})
        self.rates = rates
        point = RewindPoint.parse(rewind)
        if point.epochs and iterations_per_epoch is None:
            raise ValueError(f"rewind={rewind!r} is given in epochs; pass iterations_per_epoch")
        self.rewind_step = point.to_iteration(iterations_per_epoch or 0)
        self.level = 0
        self.mask: Mask = ones_mask(model, names)
        self._snapshot: dict | None = None
        self._apply = mask_applier(model, self.mask)

    @property
    def names(self) -> list[str]:
        return list(self.mask)

    @property
    def has_snapshot(self) -> bool:
        return self._snapshot is not None

    def snapshot(self, step: int, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Remember the weights (and optimizer state) at `step`: the rewind point of every later level."""
        self._snapshot = {"model": _clone(self.model.state_dict()), "step": step,
                          "optimizer": _clone(optimizer.state_dict()) if optimizer is not None else None}

    def snapshot_state(self) -> dict:
        """{"model": state dict, "optimizer": state dict or None, "step": int} of the snapshot."""
        if self._snapshot is None:
            raise RuntimeError("no snapshot taken: call ticket.snapshot(step, optimizer) at the rewind step")
        return self._snapshot

    def load_snapshot(self, state: dict) -> None:
        self._snapshot = {"model": state["model"], "optimizer": state.get("optimizer"), "step": int(state["step"])}

    def set_mask(self, mask: Mask) -> None:
        self.mask = mask
        self._apply = mask_applier(self.model, mask)

    def prune(self, rates: PruneRates | None = None) -> Mask:
        """Prune `rates` (default: this ticket's) of the remaining weights by the strategy; the next level's mask,
        a subset of the current one. Uses the model's current (trained) weights."""
        new = self._prune_fn(self.model, self.mask, rates or self.rates)
        assert is_subset(new, self.mask), "pruning revived a weight"
        self.set_mask(new)
        self.level += 1
        return new

    def rewind(self) -> None:
        """Weights <- the snapshot's (BatchNorm statistics included), then the mask applied."""
        self.model.load_state_dict(self.snapshot_state()["model"])
        self.apply()

    def apply(self) -> None:
        """Zero the pruned weights in place; call after every optimizer step (momentum would revive them)."""
        self._apply()

    def state_dict(self) -> dict:
        """Everything needed to resume exactly (tensors, ints and strings: loads with weights_only=True)."""
        return {"level": self.level, "mask": {n: m.clone() for n, m in self.mask.items()},
                "snapshot": self._snapshot, "strategy": self.strategy}

    def load_state_dict(self, state: dict) -> None:
        if state["strategy"] != self.strategy:
            raise ValueError(f"state was saved with strategy {state['strategy']!r}, this ticket uses "
                             f"{self.strategy!r}")
        if set(state["mask"]) != set(self.mask):
            raise KeyError(f"saved mask covers {sorted(state['mask'])}, this ticket prunes {sorted(self.mask)}")
        self.level = int(state["level"])
        self.set_mask({n: m.clone() for n, m in state["mask"].items()})
        self._snapshot = state["snapshot"]
