import copy
import random
from dataclasses import replace

import pytest
import torch

from once_for_all import ArchSpace
from once_for_all.reorder import reorder_channels
from once_for_all.supernet import OFASupernet
from tests.once_for_all.ofa_testutils import SPECS, inputs, randomize

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("dims", list(SPECS))
@pytest.mark.parametrize("train", [False, True])
def test_reorder_preserves_the_full_width_function(dims, train):
    spec = SPECS[dims]
    net = randomize(OFASupernet(spec).double(), seed=7).train(train)
    before = copy.deepcopy(net)
    reorder_channels(net)
    assert not torch.equal(net.blocks[0].project[0].weight, before.blocks[0].project[0].weight)  # it moved
    space = ArchSpace(spec, expand_ratios=(max(spec.expand_ratios),))  # widths all max, the rest random
    rng = random.Random(0)
    for cfg in [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(4)]:
        x = inputs(spec, cfg.resolution)
        net.set_active(cfg), before.set_active(cfg)
        torch.testing.assert_close(net(x), before(x), rtol=0, atol=1e-12, msg=str(cfg))
    for a, b in zip(net.buffers(), before.buffers()):  # train-mode stats updated identically (up to order)
        assert torch.allclose(a.sort().values.double(), b.sort().values.double(), rtol=0, atol=1e-12)


def test_importance_is_descending_and_narrow_nets_keep_the_important_channels():
    spec = SPECS["1d"]
    net = randomize(OFASupernet(spec).double(), seed=3).eval()
    norms = [b.project[0].weight.abs().sum((0, 2)) for b in net.blocks]
    reorder_channels(net)
    for b, n in zip(net.blocks, norms):
        after = b.project[0].weight.abs().sum((0, 2))
        torch.testing.assert_close(after, n.sort(descending=True).values, rtol=0, atol=1e-12)
        if b.se is not None:
            se = b.se.expand.weight.abs().sum(0)
            assert bool((se[1:] <= se[:-1]).all())
    cfg = replace(net.active, expands=(3,) * spec.num_blocks)
    net.set_active(cfg)
    x = inputs(spec, 16)
    y = net(x)
    reorder_channels(net)  # already sorted: a second pass changes nothing
    assert torch.equal(net(x), y)


def test_optimizer_state_is_permuted_with_the_weights():
    net = randomize(OFASupernet(SPECS["1d"]).double(), seed=1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for p in net.parameters():
        p.grad = p.detach().clone()
    opt.step()
    reorder_channels(net, opt)
    for p in net.parameters():  # after one step from zero momentum, buffer == grad == weight before the step
        torch.testing.assert_close(opt.state[p]["momentum_buffer"], p.detach() / 0.9, rtol=1e-12, atol=0)
