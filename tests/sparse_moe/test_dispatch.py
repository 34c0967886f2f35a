"""Every dispatch backend matches the loop reference (outputs and all gradients), and gradcheck passes."""

import copy

import pytest
import torch
from torch.func import functional_call

from sparse_moe import ACTIVATIONS, DISPATCHERS, Experts, MoELayer
from sparse_moe.dispatch import grouped_mm_supported

BACKENDS = [b for b in DISPATCHERS.names() if b != "loop"]
ROUTER_CASES = [
    ("switch", 1, None),
    ("switch", 1, 1.0),
    ("gshard", 2, 1.25),
    ("mixtral", 2, None),
    ("deepseek_v3", 2, None),
    ("expert_choice", 2, None),
    ("hash", 1, None),
]


def _run(layer, x, g):
    x = x.detach().clone().requires_grad_(True)
    y, _ = layer(x)
    (y * g).sum().backward()
    grads = {n: p.grad for n, p in layer.named_parameters()}
    return y.detach(), x.grad, grads


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
@pytest.mark.parametrize("router,k,cf", ROUTER_CASES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bias", [False, True])
def test_backend_matches_loop(backend, router, k, cf, dtype, tol, bias):
    torch.manual_seed(0)
    ref = MoELayer(16, 32, 4, router=router, top_k=k, capacity_factor=cf, dispatch="loop", bias=bias)
    ref = ref.to(dtype).train()
    if bias:  # make biases non-zero so their gradients and effect are checked
        with torch.no_grad():
            ref.experts.b1.normal_()
            ref.experts.b2.normal_()
    x = torch.randn(3, 20, 16, dtype=dtype)
    g = torch.randn(3, 20, 16, dtype=dtype)
    other = copy.deepcopy(ref)
    other.cfg.dispatch = backend
    if backend == "grouped_mm" and not grouped_mm_supported(x, other.experts):
        with pytest.raises(ValueError, match="grouped_mm"):
            other(x)
        return
    y0, gx0, gp0 = _run(ref, x, g)
    y1, gx1, gp1 = _run(other, x, g)
    assert (y0 - y1).abs().max() <= tol
    assert (gx0 - gx1).abs().max() <= tol
    assert gp0.keys() == gp1.keys()
    for name in gp0:
        assert (gp0[name] - gp1[name]).abs().max() <= tol, name
    if router != "hash":
        assert gp0["router.weight"].abs().sum() > 0  # the router really receives gradient


@pytest.mark.parametrize("backend", ["loop", "sort_split", "fused_ffn", "padded_bmm"])
def test_gradcheck_fp64(backend):
    torch.manual_seed(1)
    layer = MoELayer(4, 6, 3, router="mixtral", top_k=2, dispatch=backend, bias=True).double()
    names = ["router.weight", "experts.w1", "experts.w2", "experts.b1", "experts.b2"]
    params = {n: p.detach().clone().requires_grad_(True) for n, p in layer.named_parameters() if n in names}
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)

    def f(x, *ps):
        return functional_call(layer, dict(zip(names, ps)), (x,))[0]

    assert torch.autograd.gradcheck(f, (x, *[params[n] for n in names]))


def test_unknown_backend_names_allowed():
    with pytest.raises(ValueError, match="dispatch 'nope' unknown; allowed: auto, fused_ffn, grouped_mm, loop"):
        MoELayer(8, 8, 2, dispatch="nope")


@pytest.mark.parametrize("name", ACTIVATIONS.names())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_activation_backward_is_autograd_bit_for_bit(name, dtype):
    # fused_ffn runs each expert's backward by hand with these formulas; they must be autograd's own ops.
    act = ACTIVATIONS.get(name)
    torch.manual_seed(0)
    h = torch.randn(9, act.mult * 12, dtype=dtype, requires_grad=True)
    y = act.fn(h)
    g = torch.randn_like(y)
    (ref,) = torch.autograd.grad(y, h, g)
    assert torch.equal(act.backward(h.detach(), g), ref)


@pytest.mark.parametrize("backend", BACKENDS)
def test_expert_with_no_rows_gets_zero_gradient(backend):
    # Expert 1 receives nothing: every backend must return exactly zero gradient for it (not stale memory).
    dtype, tol = (torch.float32, 1e-6) if backend == "grouped_mm" else (torch.float64, 1e-12)  # no fp64 kernel
    torch.manual_seed(0)
    experts = Experts(3, 8, 8, "swiglu", bias=True).to(dtype)
    x = torch.randn(5, 8, dtype=dtype, requires_grad=True)
    token, expert = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([0, 0, 2, 2, 2])
    weight = torch.rand(5, dtype=dtype)
    results = {}
    for name in ("loop", backend):
        y, _ = DISPATCHERS.get(name)(x, token, expert, weight, experts)
        grads = torch.autograd.grad(y.square().sum(), [x, *experts.parameters()])
        results[name] = (y, *grads)
    for ref, got in zip(results["loop"], results[backend]):
        assert (ref - got).abs().max() <= tol
    for p in results[backend][2:]:  # w1, w2, b1, b2: expert 1
        assert torch.equal(p[1], torch.zeros_like(p[1]))
