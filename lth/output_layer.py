"""Which prunable layer produces the model's output: found from one forward pass, not from registration order.

    find_output_layer(model, x[:1])  # -> "head.weight"

Every Linear/Conv output is recorded by a forward hook; the autograd graph is then walked back from the model's
output, and each path stops at the first recorded layer output it reaches. The output layer is the one layer
reached that way. Ops after it (a reshape, log-softmax, a scale) are walked through; two layers reached (a sum
of two heads, a skip connection around the head) is ambiguous and refused, as is none (no prunable layer
feeds the output, or the parameters do not require grad).
"""

from __future__ import annotations

import torch
from torch import nn

PRUNABLE_TYPES = (nn.Linear, nn.modules.conv._ConvNd)


def _first_tensor(out) -> torch.Tensor:
    """The model's output tensor: itself, the first tensor of a tuple/list, or `.logits` of an output object."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    raise ValueError(f"cannot read a tensor from the model's output of type {type(out).__name__}; pass "
                     "output_layer=<weight name>")


@torch.enable_grad()
def find_output_layer(model: nn.Module, example: torch.Tensor) -> str:
    """The weight name (`"<module>.weight"`) of the Linear/Conv layer whose output is the model's output.

    `example`: one input batch, e.g. [1, *input shape] (moved to the model's device). The model runs once in eval
    mode (no dropout, BatchNorm statistics untouched) and is put back in its mode; its weights are unchanged.
    Raises ValueError when no layer or several layers produce the output."""
    produced: dict[torch.autograd.graph.Node, str] = {}

    def record(name):
        def hook(_module, _inputs, output):
            if isinstance(output, torch.Tensor) and output.grad_fn is not None:
                produced[output.grad_fn] = name
        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]
    was_training = model.training
    param = next(model.parameters(), None)
    try:
        model.eval()
        out = _first_tensor(model(example.to(param.device) if param is not None else example))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    found, seen, frontier = set(), set(), [out.grad_fn] if out.grad_fn is not None else []
    while frontier:  # walk the backward graph; a recorded layer output ends its path
        node = frontier.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if node in produced:
            found.add(produced[node])
            continue
        frontier.extend(next_fn for next_fn, _ in node.next_functions)
    if len(found) != 1:
        problem = "no Linear/Conv layer produces it" if not found else f"{sorted(found)} all feed it directly"
        raise ValueError(f"cannot tell the output layer from the forward pass: {problem}; pass "
                         "output_layer=<module name> (method.output_layer in a config)")
    return f"{found.pop()}.weight"
