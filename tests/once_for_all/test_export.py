import random

import pytest
import torch
from safetensors.torch import save_file

from once_for_all import ArchSpace
from once_for_all.export import StaticSubnet, export_subnet, load_subnet, save_subnet, subnet_state
from once_for_all.layers import ElasticMBBlock
from once_for_all.supernet import OFASupernet
from tests.once_for_all.ofa_testutils import IMAGENET, SPECS, inputs, randomize

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=list(SPECS))
def net(request):
    return randomize(OFASupernet(SPECS[request.param]).double())  # random transforms too (not identity)


def configs(spec, n=4, seed=0):
    rng = random.Random(seed)
    space = ArchSpace.full(spec)
    return [space.smallest(), space.largest()] + [space.sample(rng) for _ in range(n)]


@pytest.mark.parametrize("train", [False, True])
def test_export_equals_supernet_forward_and_gradients(net, train):
    for cfg in configs(net.spec):
        net.set_active(cfg)
        net.train(train)
        static = export_subnet(net, cfg)
        assert not any(isinstance(m, ElasticMBBlock) for m in static.modules())
        assert not any("transforms" in k for k in static.state_dict())
        x = inputs(net.spec, cfg.resolution)
        net.zero_grad()
        y_net, y_static = net(x), static(x)
        torch.testing.assert_close(y_static, y_net, rtol=0, atol=1e-12)
        w = torch.randn_like(y_net)
        (y_net * w).sum().backward()
        (y_static * w).sum().backward()
        # map the static gradients back through the export (slicing + kernel transforms): must equal the
        # supernet's own gradients for every parameter, including the transform matrices
        state = subnet_state(net, cfg)
        names = [k for k, v in state.items() if v.requires_grad]
        static_params = dict(static.named_parameters())
        mapped = torch.autograd.grad([state[k] for k in names], list(net.parameters()),
                                     [static_params[k].grad for k in names], allow_unused=True)
        for (name, p), g in zip(net.named_parameters(), mapped):
            expected = torch.zeros_like(p) if g is None else g
            actual = torch.zeros_like(p) if p.grad is None else p.grad
            torch.testing.assert_close(actual, expected, rtol=0, atol=1e-12, msg=f"{cfg} {name}")


def test_train_step_updates_the_same_running_stats(net):
    cfg = configs(net.spec)[3]
    net.set_active(cfg)
    net.train()
    static = export_subnet(net, cfg)
    x = inputs(net.spec, cfg.resolution, seed=5)
    net(x), static(x)
    after = subnet_state(net, cfg)
    for k, v in static.state_dict().items():
        torch.testing.assert_close(v, after[k].detach(), rtol=0, atol=1e-12, msg=k)


def test_export_keeps_the_supernet_active_config(net):
    cfg = configs(net.spec)[2]
    net.set_active(cfg)
    export_subnet(net, configs(net.spec)[0])
    assert net.active == cfg


def test_safetensors_round_trip_is_bit_exact(net, tmp_path):
    cfg = configs(net.spec)[4]
    static = export_subnet(net, cfg).eval()
    path = tmp_path / "sub.safetensors"
    save_subnet(static, cfg, path)
    assert [p.name for p in tmp_path.iterdir()] == ["sub.safetensors"]  # no temp file left
    loaded, cfg2 = load_subnet(path)
    assert isinstance(loaded, StaticSubnet) and cfg2 == cfg and loaded.spec == net.spec
    x = inputs(net.spec, cfg.resolution)
    assert torch.equal(loaded.eval()(x), static(x))
    for k, v in static.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_load_rejects_files_without_metadata(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match=r"plain.safetensors.*lacks \['config', 'spec'\]"):
        load_subnet(path)


@pytest.mark.slow
def test_imagenet_space_export_equals_supernet():
    net = randomize(OFASupernet(IMAGENET).double()).eval()
    cfg = ArchSpace.full(IMAGENET).sample(random.Random(0))
    cfg = ArchSpace(IMAGENET, resolutions=(128,)).mutate(cfg, random.Random(0), prob=0.0)  # smallest input
    net.set_active(cfg)
    x = inputs(IMAGENET, 128, batch=2)
    torch.testing.assert_close(export_subnet(net, cfg)(x), net(x), rtol=0, atol=1e-12)
