import copy
import random

import pytest
import torch
from torch import nn

from once_for_all import ArchSpace
from once_for_all.bn import recalibrate_bn
from once_for_all.export import export_subnet
from once_for_all.supernet import OFASupernet
from tests.once_for_all.ofa_testutils import SPECS, inputs, randomize

pytestmark = pytest.mark.usefixtures("one_thread")
D = torch.float64


def test_running_stats_are_plain_averages_of_per_batch_stats():
    # crafted: 2 channels, batches of different sizes, so a pooled or size-weighted estimate would differ
    b1 = torch.tensor([[0.0, 1.0], [2.0, 3.0]], dtype=D)  # means 1, 2; unbiased vars 2, 2
    b2 = torch.tensor([[4.0, 0.0], [4.0, 0.0], [7.0, 3.0], [1.0, 1.0]], dtype=D)  # means 4, 1; vars 6, 2
    model = nn.Sequential(nn.BatchNorm1d(2, momentum=0.3)).to(D).eval()
    with torch.no_grad():
        model[0].running_mean.fill_(9.0)
    assert recalibrate_bn(model, [b1, b2]) == 2
    assert model[0].running_mean.tolist() == [2.5, 1.5]
    assert model[0].running_var.tolist() == [4.0, 2.0]
    assert model[0].momentum == 0.3 and not model.training


def test_empty_batches_fail_and_leave_stats_untouched():
    model = nn.Sequential(nn.BatchNorm1d(2)).train()
    with torch.no_grad():
        model[0].running_mean.fill_(3.0)
    with pytest.raises(ValueError, match="batches is empty"):
        recalibrate_bn(model, [])
    assert model[0].running_mean.tolist() == [3.0, 3.0] and model.training


@pytest.mark.parametrize("dims", list(SPECS))
def test_supernet_at_active_config_matches_the_recalibrated_export(dims):
    spec = SPECS[dims]
    net = randomize(OFASupernet(spec).double(), seed=2).eval()
    cfg = ArchSpace.full(spec).sample(random.Random(4))
    net.set_active(cfg)
    batches = [inputs(spec, cfg.resolution, batch=b, seed=s) for s, b in ((1, 3), (2, 5), (3, 2))]
    static = export_subnet(net, cfg)
    before = copy.deepcopy(net)
    recalibrate_bn(net, batches)
    recalibrate_bn(static, batches)
    x = inputs(spec, cfg.resolution, seed=9)
    torch.testing.assert_close(net(x), static(x), rtol=0, atol=1e-12)
    assert not net.training
    # hand check on the first elastic block's expand BN: average of per-batch channel means / unbiased vars
    blk = net.blocks[0]
    mid = spec.mid_channels(spec.block_in_channels(0, 0), cfg.expands[0])
    feats, ref = [], copy.deepcopy(before).train()  # train mode: earlier BNs normalise with batch statistics
    conv = torch.nn.functional.conv1d if spec.dims == 1 else torch.nn.functional.conv2d
    for xb in batches:
        with torch.no_grad():
            pre = ref.stem(xb) if ref.first_block is None else ref.first_block(ref.stem(xb))
            feats.append(conv(pre, blk.expand[0].weight[:mid]))
    red = [0] + list(range(2, 2 + spec.dims))
    mean = torch.stack([f.mean(red) for f in feats]).mean(0)
    var = torch.stack([f.var(red) for f in feats]).mean(0)
    torch.testing.assert_close(blk.expand[1].running_mean[:mid], mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(blk.expand[1].running_var[:mid], var, rtol=0, atol=1e-12)
    # channels beyond the active width and blocks the sub-net skips keep their statistics
    assert torch.equal(blk.expand[1].running_mean[mid:], before.blocks[0].expand[1].running_mean[mid:])
    for b in set(range(spec.num_blocks)) - {g for _, _, g in cfg.active_blocks(spec)}:
        for t, u in zip(net.blocks[b].buffers(), before.blocks[b].buffers()):
            assert torch.equal(t, u)
