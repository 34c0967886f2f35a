"""Every registered lth model: forward, backward, gradients, prunable layers, parameter counts (timm style)."""

import math

import pytest
import torch
from torch import nn

from lth.models import MODELS, build_model

# Input of one sample per model: what its data holds (flattened length; image models also take NCHW).
IN_FEATURES = {"mlp": 40, "mnist1d_cnn": 40, "lenet_300_100": 784}
IMAGE = {"conv2", "conv4", "conv6", "vgg16", "vgg19", "resnet20"}

# Parameter counts with biases and BatchNorm, computed by hand from the architectures (10 classes):
#   LeNet-300-100: 784*300+300 + 300*100+100 + 100*10+10.
#   Conv-2: convs 3*64*9 + 64*64*9 = 38,592 (+128 biases); FC 16*16*64*256 + 256*256 + 256*10 = 4,262,400
#     (+522): Frankle & Carbin 2019 Fig. 2 give 4.3M weights, 38K conv.
#   Conv-4: conv weights 259,776 (paper: 260K), all weights 2,425,024 (paper: 2.4M).
#   Conv-6: conv weights 1,144,512 (paper: 1.1M), all weights 2,261,184. The paper prints 1.7M, which its own
#     layer list cannot give: the FC layers alone hold 4*4*256*256 + 256*256 + 2,560 = 1,116,672 weights.
#   VGG-19: 20,024,000 weights (paper: 20.0M). VGG-16: 14,715,584 weights (open_lth's cifar_vgg_16).
#   ResNet-20: conv weights 270,256 with the two 1x1 shortcuts (paper: 270K), + FC 650 + BN 1,568 = 272,474
#     (He et al. 2016: 0.27M; Frankle & Carbin: 274K).
#   MNIST-1D CNN: 1*25*5+25 + 2*(25*25*3+25) + 125*10+10 = 5,210.
PARAMS = {"lenet_300_100": 266_610, "conv2": 4_301_642, "conv4": 2_425_930, "conv6": 2_262_602,
          "vgg16": 14_728_266, "vgg19": 20_040_522, "resnet20": 272_474, "mnist1d_cnn": 5_210,
          "mlp": 40 * 500 + 500 + 500 * 500 + 500 + 500 * 10 + 10}
PRUNABLE_WEIGHTS = {"lenet_300_100": 266_200, "conv2": 4_300_992, "conv4": 2_425_024, "conv6": 2_261_184,
                    "vgg16": 14_715_584, "vgg19": 20_024_000, "resnet20": 270_896, "mnist1d_cnn": 5_125}


def _in(name):
    return IN_FEATURES.get(name, 3 * 32 * 32)


def _model(name, seed=0):
    torch.manual_seed(seed)
    return build_model(name, _in(name), 10)


def test_every_model_has_a_golden_count():
    assert set(MODELS.names()) == set(PARAMS)


@pytest.mark.parametrize("name", MODELS.names())
def test_parameter_count(name):
    model = _model(name)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    if name in PRUNABLE_WEIGHTS:
        params = dict(model.named_parameters())
        assert sum(params[n].numel() for n in model.prunable_names()) == PRUNABLE_WEIGHTS[name]


@pytest.mark.parametrize("name", MODELS.names())
def test_forward_backward_every_parameter_gets_a_gradient(name):
    model = _model(name)
    x = torch.randn(4, _in(name))
    out = model(x)
    assert out.shape == (4, 10)
    out.square().sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    for pname in model.prunable_names():
        assert dict(model.named_parameters())[pname].grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", sorted(IMAGE))
def test_image_models_take_nchw_and_flat_alike(name):
    model = _model(name).eval()
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(model(x), model(x.flatten(1)), rtol=0, atol=0)


def test_cnn1d_takes_b_l_and_b_1_l_alike():
    model = _model("mnist1d_cnn")
    x = torch.randn(5, 40)
    torch.testing.assert_close(model(x), model(x.unsqueeze(1)), rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS.names())
def test_prunable_names_are_conv_and_linear_weights_ending_with_the_output_layer(name):
    model = _model(name)
    modules = dict(model.named_modules())
    names = model.prunable_names()
    for n in names:
        assert n.endswith(".weight")
        assert isinstance(modules[n.rsplit(".", 1)[0]], (nn.Linear, nn.Conv1d, nn.Conv2d)), n
    every = [f"{m}.weight" for m, mod in modules.items() if isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    assert names == every  # open_lth: every Conv/Linear weight, in module order; never BN or biases
    out = model.output_layer_name()
    assert out == names[-1]
    assert isinstance(modules[out.rsplit(".", 1)[0]], nn.Linear)
    assert dict(model.named_parameters())[out].shape[0] == 10


def test_resnet20_prunes_19_convs_2_shortcuts_and_fc():
    names = _model("resnet20").prunable_names()
    assert len(names) == 22
    assert sum("shortcut" in n for n in names) == 2
    assert names[0] == "conv.weight" and names[-1] == "fc.weight"


@pytest.mark.parametrize("name,layer", [("conv2", "classifier.1.weight"), ("lenet_300_100", "net.0.weight")])
def test_paper_models_default_to_glorot_normal(name, layer):
    w = dict(_model(name).named_parameters())[layer]
    fan_out, fan_in = w.shape[0], w[0].numel()
    expected = math.sqrt(2.0 / (fan_in + fan_out))
    assert abs(w.std().item() / expected - 1) < 0.02
    assert abs(w.mean().item()) < 0.05 * expected


def test_resnet20_defaults_to_kaiming_normal_and_zero_free_convs():
    model = _model("resnet20")
    w = model.blocks[8].conv2.weight  # 64*64*9 weights
    assert abs(w.std().item() / math.sqrt(2.0 / w[0].numel()) - 1) < 0.02
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_same_seed_same_weights():
    a, b = _model("conv4", seed=3), _model("conv4", seed=3)
    for (na, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), na


def test_grayscale_28px_input_builds_one_channel_convnet():
    model = build_model("conv2", 784, 10, image_size=28)
    assert model.features[0].in_channels == 1
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("name,kwargs,match", [
    ("vgg16", {"in_features": 40}, "in_features=40"),
    ("resnet20", {"in_features": 3072, "hidden": [10]}, "fixed architecture"),
    ("conv6", {"in_features": 3 * 36 * 36, "image_size": 36}, "divisible by 8"),
    ("conv2", {"in_features": 3072, "init": "uniform"}, "model.init='uniform'"),
])
def test_bad_arguments_raise_one_clear_error(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model(name, num_classes=10, **kwargs)


def test_wrong_input_rank_is_refused():
    with pytest.raises(ValueError, match=r"expected input \[B, 3, 32, 32\]"):
        _model("conv2")(torch.randn(2, 3, 32))
