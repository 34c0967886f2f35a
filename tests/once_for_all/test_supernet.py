import random
from dataclasses import replace

import pytest
import torch

from once_for_all import ArchSpace
from once_for_all.supernet import OFASupernet, resize_input
from tests.once_for_all.ofa_testutils import SPEC_1D, SPECS, inputs, randomize

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=list(SPECS))
def net(request):
    return randomize(OFASupernet(SPECS[request.param]).double()).eval()


def test_defaults_to_largest_and_output_shape(net):
    spec = net.spec
    assert net.active == ArchSpace.full(spec).largest()
    assert len(net.blocks) == spec.num_blocks == 8
    x = inputs(spec, spec.resolutions[-1])
    assert net(x).shape == (3, spec.num_classes)


def test_first_block_of_stage_has_stride_and_shortcut_only_when_shapes_match(net):
    spec = net.spec
    for s in range(spec.num_stages):
        first, rest = net.blocks[spec.stage_blocks(s)[0]], net.blocks[spec.stage_blocks(s)[1]]
        assert first.depthwise[0].stride == (spec.stage_strides[s],) * spec.dims
        assert first.residual == (spec.stage_strides[s] == 1 and spec.block_in_channels(s, 0) == spec.stage_widths[s])
        assert rest.residual and rest.depthwise[0].stride == (1,) * spec.dims


def test_skipped_blocks_do_not_matter_active_ones_do(net):
    space = ArchSpace.full(net.spec)
    c = replace(space.sample(random.Random(3)), depths=(2, 3))
    x = inputs(net.spec, c.resolution)
    net.set_active(c)
    y = net(x)
    hidden = list(c.kernels)
    hidden[2], hidden[3], hidden[7] = 3, 5, 3  # stage 0 blocks 2,3 and stage 1 block 3 are skipped
    net.set_active(replace(c, kernels=tuple(hidden), expands=c.expands[:7] + (3,)))
    assert torch.equal(net(x), y)
    net.set_active(replace(c, kernels=(7 if c.kernels[0] != 7 else 3,) + c.kernels[1:]))
    assert not torch.allclose(net(x), y)
    net.set_active(replace(c, depths=(4, 3)))
    assert not torch.allclose(net(x), y)


def test_set_active_validates(net):
    bad = replace(net.active, depths=(1, 4))
    with pytest.raises(ValueError, match=r"depths\[stage 0\]=1"):
        net.set_active(bad)


def test_resize_input():
    x = torch.ones(2, 1, 40, dtype=torch.float64) * torch.arange(2.0, dtype=torch.float64)[:, None, None]
    assert resize_input(x, 40) is x
    y = resize_input(x, 32)
    assert y.shape == (2, 1, 32) and torch.equal(y[1], torch.ones(1, 32, dtype=torch.float64))
    assert resize_input(torch.zeros(1, 3, 8, 8), 12).shape == (1, 3, 12, 12)


def test_train_mode_updates_only_active_width_running_stats():
    net = OFASupernet(SPEC_1D).double().train()
    cfg = replace(net.active, expands=(3,) * 8)
    net.set_active(cfg)
    net(inputs(SPEC_1D, 16))
    bn = net.blocks[0].expand[1]  # 4 channels in, e=3 -> 12 of 24
    assert not torch.equal(bn.running_mean[:12], torch.zeros(12, dtype=torch.float64))
    assert torch.equal(bn.running_mean[12:], torch.zeros(12, dtype=torch.float64))
