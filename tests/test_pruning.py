import pytest
import torch

from lth import STRATEGIES, PruneRates, build_model, density, is_subset, ones_mask, random_mask_like


def _model(name="mlp", in_features=40, hidden=(50, 30)):
    torch.manual_seed(0)
    return build_model(name, in_features, 10, hidden=list(hidden) if name == "mlp" else None)


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.9])
def test_layerwise_density_within_one_weight_per_tensor(rate):
    model = _model()
    mask = ones_mask(model, model.prunable_names())
    new = STRATEGIES.get("magnitude_layerwise")(model, mask, PruneRates(rate))
    for name, m in new.items():
        target = (1 - rate) * m.numel()
        assert abs(int(m.sum()) - target) <= 1, name


def test_layerwise_prunes_smallest_magnitudes_of_each_layer():
    model = _model()
    mask = ones_mask(model, model.prunable_names())
    new = STRATEGIES.get("magnitude_layerwise")(model, mask, PruneRates(0.3))
    params = dict(model.named_parameters())
    for name, m in new.items():
        w = params[name].detach().abs()
        assert w[m].min() >= w[~m].max()


def test_global_pools_layers_and_output_keeps_its_own_rate():
    model = _model()
    names = model.prunable_names()
    mask = ones_mask(model, names)
    out = model.output_layer_name()
    new = STRATEGIES.get("magnitude_global")(model, mask, PruneRates(0.5, {out: 0.1}))
    pooled = [n for n in names if n != out]
    kept = sum(int(new[n].sum()) for n in pooled)
    assert abs(kept - 0.5 * sum(mask[n].numel() for n in pooled)) <= 1
    assert abs(int(new[out].sum()) - 0.9 * new[out].numel()) <= 1
    params = dict(model.named_parameters())
    kept_min = min(params[n].detach().abs()[new[n]].min() for n in pooled)
    pruned_max = max(params[n].detach().abs()[~new[n]].max() for n in pooled)
    assert kept_min >= pruned_max  # one threshold across the pooled layers


@pytest.mark.parametrize("strategy", ["magnitude_layerwise", "magnitude_global", "random_layerwise", "random_global"])
def test_masks_are_monotone_across_levels(strategy):
    model = _model()
    mask = ones_mask(model, model.prunable_names())
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        with torch.no_grad():  # weights change between levels, as after retraining
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
        new = STRATEGIES.get(strategy)(model, mask, PruneRates(0.2), generator=gen)
        assert is_subset(new, mask)
        assert density(new) < density(mask)
        mask = new


def test_lenet_layerwise_15_levels_leaves_9537_weights():
    """Frankle & Carbin 2019: hidden 20%, output 10% per level, 15 levels -> 3.58% of 266,200 weights."""
    model = build_model("lenet_300_100", 784, 10)
    mask = ones_mask(model, model.prunable_names())
    assert sum(m.numel() for m in mask.values()) == 266_200
    rates = PruneRates(0.2, {model.output_layer_name(): 0.1})
    for _ in range(15):
        mask = STRATEGIES.get("magnitude_layerwise")(model, mask, rates)
    kept = sum(int(m.sum()) for m in mask.values())
    assert kept == 9537
    assert round(100 * kept / 266_200, 2) == 3.58


def test_random_mask_like_keeps_per_layer_counts():
    model = _model()
    mask = STRATEGIES.get("magnitude_layerwise")(model, ones_mask(model, model.prunable_names()), PruneRates(0.7))
    rnd = random_mask_like(mask, torch.Generator().manual_seed(0))
    for name in mask:
        assert int(rnd[name].sum()) == int(mask[name].sum())
        assert not torch.equal(rnd[name], mask[name])


def test_bad_rate_is_rejected_with_its_name():
    with pytest.raises(ValueError, match="default"):
        PruneRates(1.5)


def test_mask_applier_zeroes_exactly_what_apply_mask_does():
    from lth.masks import apply_mask, mask_applier

    torch.manual_seed(0)
    a = build_model("mlp", 40, 10, hidden=[16])
    b = build_model("mlp", 40, 10, hidden=[16])
    b.load_state_dict(a.state_dict())
    mask = {n: torch.rand_like(p) > 0.5 for n, p in a.named_parameters() if n in a.prunable_names()}
    apply_mask(a, mask)
    mask_applier(b, mask)()
    for (n, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), n
    assert all(int((p == 0).sum()) >= int((~mask[n]).sum()) for n, p in b.named_parameters() if n in mask)
