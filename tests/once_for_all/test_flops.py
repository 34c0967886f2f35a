import random

import pytest
import torch

from meter.flops import count_flops
from once_for_all import ArchSpace
from once_for_all.export import StaticSubnet
from once_for_all.flops import FlopsTable
from once_for_all.supernet import OFASupernet
from tests.once_for_all.ofa_testutils import IMAGENET, SPECS

pytestmark = pytest.mark.usefixtures("one_thread")

def counted(spec, cfg):
    model = StaticSubnet(spec, cfg).eval()
    x = torch.zeros(1, spec.in_channels, *(cfg.resolution,) * spec.dims)
    return count_flops(model, (x,)).forward


@pytest.mark.parametrize("dims", list(SPECS))
def test_table_equals_flop_counter_on_20_random_subnets(dims):
    spec = SPECS[dims]
    space, table, rng = ArchSpace.full(spec), FlopsTable(spec), random.Random(11)
    for cfg in [space.sample(rng) for _ in range(18)] + [space.smallest(), space.largest()]:
        assert table.predict(cfg) == counted(spec, cfg), str(cfg)


def test_block_entries_add_up_and_skipped_blocks_cost_nothing():
    spec = SPECS["1d"]
    space, table = ArchSpace.full(spec), FlopsTable(spec)
    small, large = space.smallest(), space.largest()
    assert table.predict(large) - table.predict(space._uniform(7, 6, 2, 16)) == sum(
        table.block_flops(s, i, 7, 6, 16) for s in range(2) for i in (2, 3))
    # hand count of stage 0, block 1 (6 -> 6 channels, e=4 -> mid 24, k=5, length 12, stride 1, no SE)
    assert table.block_flops(0, 1, 5, 4, 12) == 2 * (12 * 6 * 24 + 12 * 24 * 5 + 12 * 24 * 6)
    assert table.predict(small) < table.predict(large)


def test_supernet_forward_costs_the_kernel_transforms_on_top():
    spec = SPECS["1d"]
    net = OFASupernet(spec).eval()
    cfg = ArchSpace(spec, kernel_sizes=(3,)).largest()  # every block at k=3: two chained transforms each
    net.set_active(cfg)
    x = torch.zeros(1, 1, cfg.resolution)
    extra = sum(2 * spec.mid_channels(spec.block_in_channels(s, i), 6) * (5 * 5 + 3 * 3)
                for s, i, _ in cfg.active_blocks(spec))
    assert count_flops(net, (x,)).forward == FlopsTable(spec).predict(cfg) + extra


def test_imagenet_space_by_config_alone():
    space, table = ArchSpace.full(IMAGENET), FlopsTable(IMAGENET)
    assert IMAGENET.num_blocks == 20 and len(IMAGENET.resolutions) == 25
    assert [IMAGENET.mid_channels(24, e) for e in (3, 4, 6)] == [72, 96, 144]
    largest, smallest = space.largest(), space.smallest()
    assert largest.resolution == 224 and smallest.resolution == 128
    for cfg in (largest, smallest):
        assert table.predict(cfg) == counted(IMAGENET, cfg)
