"""Exports: safetensors round trip of weights + mask; structurally pruned MLPs compute the masked model's outputs."""

import pytest
import torch

from lth import STRATEGIES, PruneRates, apply_mask, build_model, ones_mask
from lth.export import (
    MASK_FILE,
    MODEL_FILE,
    linear_macs,
    load_pruned,
    save_pruned,
    structured,
    structured_mlp,
)


def _pruned(name="lenet_300_100", in_features=784, rate=0.9, seed=0):
    torch.manual_seed(seed)
    model = build_model(name, in_features, 10)
    mask = STRATEGIES.get("magnitude_layerwise")(model, ones_mask(model, model.prunable_names()), PruneRates(rate))
    apply_mask(model, mask)
    return model, mask


def test_save_load_round_trip_is_bit_exact(tmp_path):
    model, mask = _pruned()
    save_pruned(tmp_path / "ticket", model, mask, metadata={"model": "lenet_300_100", "level": 10})
    state, loaded_mask, meta = load_pruned(tmp_path / "ticket")
    assert meta == {"model": "lenet_300_100", "level": 10}
    assert state.keys() == model.state_dict().keys()
    for k, v in model.state_dict().items():
        assert torch.equal(state[k], v), k
    assert loaded_mask.keys() == mask.keys()
    for k in mask:
        assert loaded_mask[k].dtype == torch.bool and torch.equal(loaded_mask[k], mask[k])
    fresh = build_model("lenet_300_100", 784, 10)
    fresh.load_state_dict(state)
    x = torch.randn(3, 784)
    assert torch.equal(fresh(x), model(x))


def test_save_refuses_weights_the_mask_prunes(tmp_path):
    model, mask = _pruned()
    with torch.no_grad():
        model.net[0].weight.add_(1.0)
    with pytest.raises(ValueError, match="net.0.weight has .* nonzero weights where the mask prunes"):
        save_pruned(tmp_path, model, mask)
    assert not (tmp_path / MODEL_FILE).exists()


def test_load_names_the_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=MASK_FILE):
        load_pruned(tmp_path)


def _mlp(ws, bs):
    """An lth MLP in float64 with the given weights and biases."""
    ws = [torch.as_tensor(w, dtype=torch.float64) for w in ws]
    model = build_model("mlp", ws[0].shape[1], ws[-1].shape[0], hidden=[w.shape[0] for w in ws[:-1]]).double()
    for lin, w, b in zip([m for m in model.net if isinstance(m, torch.nn.Linear)], ws, bs):
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(w, dtype=torch.float64))
            lin.bias.copy_(torch.as_tensor(b, dtype=torch.float64))
    return model


def test_structured_mlp_hand_made_case():
    # 3 inputs -> 4 hidden -> 3 hidden -> 2 outputs
    w1 = [[1, 2, 0], [0, 0, 0], [0, 1, -1], [3, 0, 1]]  # h1[1] dead-in, bias 0.5 -> constant 0.5
    b1 = [0.1, 0.5, -0.2, 0.3]
    w2 = [[1, -1, 0, 0],  # h2[0] fed by h1[0] and the constant
          [0, 2, 0, 0],   # h2[1] fed only by the constant h1[1]: becomes constant relu(-0.4 + 1.0) = 0.6
          [0, 0, 0, 0]]   # h2[2] dead-in, bias -1: constant 0
    b2 = [0.0, -0.4, -1.0]
    w3 = [[1, 1, 5], [2, -1, 7]]  # h1[2], h1[3] feed no surviving h2 neuron once h2[1], h2[2] are constants
    b3 = [0.0, 0.5]
    model = _mlp([w1, w2, w3], [b1, b2, b3])
    small = structured_mlp(model)
    assert [m.weight.shape for m in small.net if isinstance(m, torch.nn.Linear)] == [(1, 3), (1, 1), (2, 1)]
    # folded biases by hand: h2[0] gets -1 * 0.5; outputs get h2[1] = 0.6 and h2[2] = 0
    assert small.net[2].bias.tolist() == [0.0 - 0.5]
    assert small.net[4].bias.tolist() == pytest.approx([0.0 + 1 * 0.6, 0.5 - 1 * 0.6], abs=1e-15)
    x = torch.randn(50, 3, dtype=torch.float64)
    torch.testing.assert_close(small(x), model(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("rate,seed", [(0.9, 0), (0.97, 1), (0.99, 2)])
def test_structured_lenet_matches_masked_outputs(rate, seed):
    model, mask = _pruned(rate=rate, seed=seed)
    with torch.no_grad():  # biases of both signs, so some dead-in neurons are nonzero constants
        for m in model.net:
            if isinstance(m, torch.nn.Linear):
                m.bias.normal_(0, 0.5)
    small = structured_mlp(model, mask)
    x = torch.randn(64, 784)
    torch.testing.assert_close(small(x), model(x), rtol=1e-5, atol=1e-5)
    small64, model64 = structured_mlp(model.double(), mask), model.double()
    torch.testing.assert_close(small64(x.double()), model64(x.double()), rtol=0, atol=1e-12)
    widths = [m.out_features for m in small.net if isinstance(m, torch.nn.Linear)]
    assert widths[-1] == 10 and all(w <= o for w, o in zip(widths, [300, 100]))
    assert linear_macs(small) <= linear_macs(model)


def test_structured_mlp_removes_neurons_once_a_layer_is_very_sparse():
    model, mask = _pruned(rate=0.99, seed=3)
    mask["net.2.weight"][:50] = False  # disconnect half of the second hidden layer entirely
    apply_mask(model, mask)
    small = structured_mlp(model, mask)
    assert small.net[2].out_features <= 50
    x = torch.randn(8, 784)
    torch.testing.assert_close(small(x), model(x), rtol=1e-5, atol=1e-5)


def test_dense_model_is_unchanged_and_macs_count_mask():
    model, mask = _pruned(rate=0.0)
    small = structured_mlp(model, mask)
    assert [m.out_features for m in small.net if isinstance(m, torch.nn.Linear)] == [300, 100, 10]
    assert linear_macs(model) == 266_200
    sparse, sparse_mask = _pruned(rate=0.5)
    assert linear_macs(sparse, sparse_mask) == sum(int(m.sum()) for m in sparse_mask.values())


def test_structured_mlp_refuses_convnets_and_structured_refuses_batchnorm_models():
    with pytest.raises(TypeError, match="lth MLP"):
        structured_mlp(build_model("conv2", 3072, 10))
    with pytest.raises(TypeError, match="no rule for CifarResNet; handled: CNN1D, ConvNet, MLP"):
        structured(build_model("resnet20", 3072, 10))


def test_structured_conv4_channels_follow_the_padding_rule():
    torch.manual_seed(0)
    model = build_model("conv4", 3 * 8 * 8, 10, image_size=8).double()  # convs 64, 64, 128, 128; FC 256, 256
    mask = ones_mask(model, model.prunable_names())
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for c in convs:
            c.bias.uniform_(0.1, 0.5)
        convs[0].bias[1] = -0.3                      # dead-in with relu(b) = 0: dropped
        mask["features.0.weight"][[0, 1]] = False     # channel 0 (relu(b) > 0) feeds a padded conv: kept
        mask["features.2.weight"][:, 5] = False       # conv0 channel 5: every outgoing weight masked: dropped
        mask["features.7.weight"][[3, 4]] = False     # last conv, dead-in constants folded into FC 1: dropped
        mask["classifier.1.weight"].view(256, 128, 4)[:, 9] = False  # last conv channel 9: dead-out
    apply_mask(model, mask)
    small = structured(model, mask)
    assert [m.out_channels for m in small.features if isinstance(m, torch.nn.Conv2d)] == [62, 64, 128, 125]
    assert small.classifier[1].in_features == 125 * 4
    x = torch.randn(6, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(small(x), model(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name,in_features,kwargs", [("conv2", 3 * 8 * 8, {"image_size": 8}),
                                                     ("mnist1d_cnn", 40, {})])
def test_structured_convnets_match_masked_outputs_at_high_sparsity(name, in_features, kwargs):
    torch.manual_seed(4)
    model = build_model(name, in_features, 10, **kwargs)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)):
                m.bias.normal_(0, 0.3)
    mask = STRATEGIES.get("magnitude_layerwise")(model, ones_mask(model, model.prunable_names()), PruneRates(0.98))
    apply_mask(model, mask)
    small = structured(model, mask)
    x = torch.randn(5, in_features)
    torch.testing.assert_close(small(x), model(x), rtol=1e-5, atol=1e-5)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())


def test_a_hidden_layer_losing_every_neuron_leaves_a_constant_output(recwarn):
    torch.manual_seed(0)
    model = build_model("mlp", 8, 3, hidden=[5, 4])
    mask = ones_mask(model, model.prunable_names())
    mask["net.2.weight"][:] = False
    apply_mask(model, mask)
    small = structured(model, mask)
    assert [m.out_features for m in small.net if isinstance(m, torch.nn.Linear)] == [0, 0, 3]
    x = torch.randn(4, 8)
    torch.testing.assert_close(small(x), model(x))
    torch.testing.assert_close(small(x), small.net[4].bias.expand(4, 3))
    assert not [w for w in recwarn if "zero-element" in str(w.message)]
