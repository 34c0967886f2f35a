import pytest
import torch
import torch.nn.functional as F

from once_for_all.layers import ELASTIC_BN, ElasticMBBlock, MBBlock

pytestmark = pytest.mark.usefixtures("one_thread")


def block(dims, kernel_sizes=(3, 5, 7)):
    torch.manual_seed(0)
    return ElasticMBBlock(dims, 4, 6, 1, True, "hswish", kernel_sizes, (2, 3), lambda e: int(4 * e),
                          lambda m: m // 4).double()


def centre(w, k, dims):
    lo = (w.shape[-1] - k) // 2
    return w[(slice(None), slice(None)) + (slice(lo, lo + k),) * dims]


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("mid", [8, 12])
def test_identity_transforms_give_the_centre_crop(dims, k, mid):
    b = block(dims)
    w = b.depthwise[0].weight
    assert w.shape == (12, 1) + (7,) * dims
    assert torch.equal(b.kernel(k, mid), centre(w[:mid], k, dims))


@pytest.mark.parametrize("dims", [1, 2])
def test_transforms_are_chained_per_layer_and_shared_across_channels(dims):
    b = block(dims)
    assert {n: tuple(p.shape) for n, p in b.transforms.items()} == {"7to5": (5**dims,) * 2, "5to3": (3**dims,) * 2}
    with torch.no_grad():
        for p in b.transforms.values():
            p.normal_()
    w = b.depthwise[0].weight[:8]
    m75, m53 = b.transforms["7to5"], b.transforms["5to3"]
    k5 = torch.einsum("cp,qp->cq", centre(w, 5, dims).reshape(8, -1), m75).reshape(8, 1, *(5,) * dims)
    k3 = torch.einsum("cp,qp->cq", centre(k5, 3, dims).reshape(8, -1), m53).reshape(8, 1, *(3,) * dims)
    torch.testing.assert_close(b.kernel(5, 8), k5, rtol=0, atol=1e-13)
    torch.testing.assert_close(b.kernel(3, 8), k3, rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="kernel 4 not in"):
        b.kernel(4, 8)


def test_elastic_bn_slices_to_input_width_and_keeps_momentum_rules():
    bn = ELASTIC_BN[1](6).double()
    with torch.no_grad():
        bn.weight.uniform_(), bn.bias.normal_()
    x = torch.randn(5, 4, 3, dtype=torch.float64)
    y = bn(x)
    mean, var = x.mean((0, 2)), x.var((0, 2), unbiased=False)
    ref = (x - mean[:, None]) / torch.sqrt(var[:, None] + bn.eps) * bn.weight[:4, None] + bn.bias[:4, None]
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(bn.running_mean, torch.cat([0.1 * mean, torch.zeros(2, dtype=torch.float64)]))
    assert torch.equal(bn.running_var[4:], torch.ones(2, dtype=torch.float64))
    bn.momentum = None  # cumulative average: after the 2nd batch, running = mean of both batches' stats
    bn.reset_running_stats()
    x2 = torch.randn(7, 4, 3, dtype=torch.float64)
    bn(x), bn(x2)
    torch.testing.assert_close(bn.running_var[:4], (x.var((0, 2)) + x2.var((0, 2))) / 2, rtol=0, atol=1e-14)
    assert int(bn.num_batches_tracked) == 2


@pytest.mark.parametrize("dims", [1, 2])
def test_elastic_block_at_full_size_is_the_static_block(dims):
    b = block(dims)
    s = MBBlock(dims, 4, 12, 6, 7, 1, 3, "hswish").double()
    s.load_state_dict({k: v for k, v in b.state_dict().items() if not k.startswith("transforms")})
    x = torch.randn(2, 4, *(9,) * dims, dtype=torch.float64)
    assert torch.equal(b(x), s(x)) and b.residual is False


def test_se_gate_formula():
    s = MBBlock(1, 4, 4, 4, 3, 1, 2, "relu", expand=False).double()
    x = torch.randn(2, 4, 5, dtype=torch.float64)
    g = F.hardsigmoid(s.se.expand(F.relu(s.se.reduce(x.mean(2)))))
    assert s.residual and s.expand is None
    torch.testing.assert_close(s.se(x), x * g[:, :, None], rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="mid == cin"):
        MBBlock(1, 4, 8, 4, 3, 1, 0, "relu", expand=False)
