"""Pretrained weights for model=torchvision: `model.weights` (torchvision names via torch.hub's cache, never the
network here) and `model.weights_path` (a local state dict); mismatches are config errors naming the key."""

import pytest
import torch
import torchvision

from experiments.errors import CONFIG, INPUT, InputError, kind_of
from experiments.pretrained_weights import apply_state_dict, head_names
from experiments.schema import ConfigError
from experiments.tasks.lth_config import TorchvisionModelCfg
from tests.helpers import FAST, run_cli

NAME = "shufflenet_v2_x0_5"  # 1.4 M parameters: the smallest torchvision classifier with a Linear head


def _donor(num_classes: int, seed: int = 7) -> dict:
    torch.manual_seed(seed)
    return torchvision.models.get_model(NAME, weights=None, num_classes=num_classes).state_dict()


def test_weights_path_loads_every_tensor_bit_for_bit(tmp_path):
    state = _donor(10)
    torch.save(state, tmp_path / "w.pt")
    model = TorchvisionModelCfg(name=NAME, weights_path=str(tmp_path / "w.pt")).build(3, 10)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_a_checkpoint_wrapper_is_unwrapped(tmp_path):
    state = _donor(10)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "ckpt.pt")
    model = TorchvisionModelCfg(name=NAME, weights_path=str(tmp_path / "ckpt.pt")).build(3, 10)
    assert torch.equal(model.fc.weight, state["fc.weight"])


def test_cached_torchvision_weights_load_without_network_and_keep_a_new_head(tmp_path, monkeypatch):
    """ImageNet weights (1000 classes) onto 10 classes: every tensor but the fc head comes from the cache file."""
    name = "ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1"
    url = torchvision.models.get_weight(name).url
    state = _donor(1000)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(state, tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[-1])
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("tried the network"))

    model = TorchvisionModelCfg(name=NAME, weights=name).build(3, 10)
    own = model.state_dict()
    assert head_names(model) == {"fc.weight", "fc.bias"} and own["fc.weight"].shape == (10, 1024)
    assert all(torch.equal(own[k], state[k]) for k in own if not k.startswith("fc."))


def test_uncached_torchvision_weights_offline_is_an_input_error_naming_the_cache(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(InputError, match="shufflenetv2_x0.5-f707e7126e.pth is not cached") as e:
        TorchvisionModelCfg(name=NAME, weights="ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1").build(3, 10)
    assert kind_of(e.value) == INPUT


@pytest.mark.parametrize("weights", ["ResNet18_Weights.IMAGENET1K_V1", "ShuffleNet_V2_X0_5_Weights.NOPE", "nope"])
def test_a_weights_name_of_another_model_or_unknown_is_a_config_error(weights):
    with pytest.raises(ConfigError, match=r"model.weights=.*ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1") as e:
        TorchvisionModelCfg(name=NAME, weights=weights)
    assert kind_of(e.value) == CONFIG


def test_both_sources_at_once_is_a_config_error():
    with pytest.raises(ConfigError, match="at most one"):
        TorchvisionModelCfg(name=NAME, weights="DEFAULT", weights_path="w.pt")


@pytest.mark.parametrize("edit, named", [
    (lambda s: s.pop("conv1.0.weight"), "missing key 'conv1.0.weight'"),
    (lambda s: s.__setitem__("extra.weight", torch.zeros(1)), "unexpected key 'extra.weight'"),
    (lambda s: s.__setitem__("conv1.0.weight", torch.zeros(24, 3, 5, 5)), "'conv1.0.weight' has shape (24, 3, 5, 5)"),
])
def test_a_mismatched_state_dict_is_a_config_error_naming_the_first_bad_key(edit, named):
    state = _donor(10)
    edit(state)
    model = torchvision.models.get_model(NAME, weights=None, num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError) as e:
        apply_state_dict(model, state, "model.weights_path='w.pt'")
    assert named in str(e.value) and "model.weights_path='w.pt'" in str(e.value)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing half-loaded


def test_a_non_state_dict_file_is_an_input_error(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(InputError, match="list.pt.*holds a list"):
        TorchvisionModelCfg(name=NAME, weights_path=str(tmp_path / "list.pt")).build(3, 10)


@pytest.mark.slow
def test_cli_missing_weights_file_exits_4_and_mismatch_exits_2(tmp_path):
    common = [*FAST, "meter=off", "data=mnist5k", "model=torchvision", f"model.name={NAME}"]
    missing = tmp_path / "nowhere.pt"
    proc = run_cli([*common, f"model.weights_path={missing}", f"hydra.run.dir={tmp_path / 'a'}"], cwd=tmp_path)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 4 and last.startswith("input error: ") and str(missing) in last, proc.stderr

    state = _donor(10)
    state["extra.bias"] = torch.zeros(2)
    torch.save(state, tmp_path / "w.pt")
    proc = run_cli([*common, f"model.weights_path={tmp_path / 'w.pt'}", f"hydra.run.dir={tmp_path / 'b'}"],
                   cwd=tmp_path)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "unexpected key 'extra.bias'" in last, proc.stderr


def test_af_backbones_per_resolution_and_imagenet_start(monkeypatch):
    """AR-Net's backbones differ per resolution; model.pretrained=imagenet fills every backbone and the policy
    encoder from torchvision's DEFAULT weights (served here from donors, no network), heads kept fresh."""
    import experiments.pretrained_weights as pw
    from adaptive_frames.model import AdaptiveFrameModel, ModelConfig
    from adaptive_frames.policy import PolicyConfig
    from experiments.tasks.adaptive_frames import load_imagenet

    donors = {}

    def served(weights: str) -> dict:
        arch = {"ResNet18_Weights.DEFAULT": "resnet18", "MobileNet_V2_Weights.DEFAULT": "mobilenet_v2"}[weights]
        torch.manual_seed(len(donors))
        donors[arch] = torchvision.models.get_model(arch, weights=None, num_classes=1000).state_dict()
        return donors[arch]

    monkeypatch.setattr(pw, "torchvision_state_dict", served)
    cfg = ModelConfig(num_classes=5, in_channels=3, backbones=["resnet18", "tiny_cnn"], resolutions=[32, 16],
                      policy=PolicyConfig(encoder="mobilenet_v2", input_size=16, feature_dim=8, hidden=8))
    model = AdaptiveFrameModel(cfg)
    assert [type(b).__name__ for b in model.backbones] == ["ResNet", "TinyCNN"]
    load_imagenet(model, ["resnet18"], "mobilenet_v2")  # the tiny_cnn has no ImageNet weights: left out
    got = model.backbones[0].state_dict()
    assert all(torch.equal(got[k], donors["resnet18"][k]) for k in got if not k.startswith("fc."))
    assert got["fc.weight"].shape == (5, 512)
    enc = model.policy.encoder.state_dict()
    assert all(torch.equal(enc[k], donors["mobilenet_v2"][k]) for k in enc if not k.startswith("classifier.1"))


def test_af_imagenet_needs_torchvision_networks():
    from experiments.tasks.af_config import AFModelCfg

    with pytest.raises(ConfigError, match=r"model.pretrained=.*\['tiny_cnn'\]"):
        AFModelCfg(backbone="tiny_cnn", pretrained="imagenet")
    with pytest.raises(ConfigError, match="model.backbones"):
        AFModelCfg(backbones=["resnet18"], resolutions=[64, 32])


def test_timm_weights_path_loads_and_a_mismatch_names_the_key(tmp_path):
    pytest.importorskip("timm")
    import timm

    from experiments.tasks.hf_config import TimmModelCfg

    torch.manual_seed(3)
    state = timm.create_model("test_efficientnet", pretrained=False, num_classes=4).state_dict()
    torch.save(state, tmp_path / "t.pt")
    model = TimmModelCfg(name="test_efficientnet", weights_path=str(tmp_path / "t.pt")).build(3, 4)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    first = next(iter(state))
    torch.save({k: v for k, v in state.items() if k != first}, tmp_path / "short.pt")
    with pytest.raises(ConfigError, match=f"missing key '{first}'"):
        TimmModelCfg(name="test_efficientnet", weights_path=str(tmp_path / "short.pt")).build(3, 4)
