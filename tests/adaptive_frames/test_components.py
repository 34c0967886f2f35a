import pytest
import torch

from adaptive_frames import BACKBONES, CELLS, build_backbone, build_baseline, mean_average_precision
from adaptive_frames.baselines import coarse_to_fine
from adaptive_frames.metrics import average_precision
from meter.registry import Registry
from tests.adaptive_frames.af_testutils import small_model


@pytest.mark.parametrize("name", BACKBONES.names())
def test_every_backbone_builds_for_gray_input(name):
    net = build_backbone(name, 1, 5, 1.0).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 1, 32, 32)).shape == (2, 5)


def test_registry_refuses_duplicates_and_names_itself():
    r = Registry("thing")
    r.register("a")(1)
    with pytest.raises(KeyError, match="thing registry already has"):
        r.register("a")(2)
    with pytest.raises(KeyError, match="unknown thing 'b'; registered: a"):
        r.get("b")
    assert set(CELLS.names()) == {"gru", "lstm"}


def test_average_precision_hand_values():
    # ranking: pos, neg, pos, neg -> precisions at positives 1/1 and 2/3
    assert average_precision(torch.tensor([0.9, 0.8, 0.7, 0.1]), torch.tensor([1, 0, 1, 0])) == pytest.approx(
        (1 + 2 / 3) / 2)
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.7]])
    targets = torch.tensor([[1, 0], [0, 1], [0, 1]])
    # class 0: pos ranked 1st -> 1; class 1: positives ranked 1st and 2nd -> 1
    assert mean_average_precision(scores, targets) == pytest.approx(1.0)
    targets2 = torch.tensor([[0, 0], [1, 1], [0, 0]])  # class 0 positive ranked 3rd -> 1/3; class 1 1st -> 1
    assert mean_average_precision(scores, targets2) == pytest.approx((1 / 3 + 1) / 2)
    with pytest.raises(ValueError, match="must both be"):
        mean_average_precision(scores, targets[:2])


def test_coarse_to_fine_is_a_permutation_starting_in_the_middle():
    for t in (1, 5, 16, 13):
        order = coarse_to_fine(t)
        assert sorted(order) == list(range(t)) and order[0] == t // 2


def test_baselines_frame_counts_and_costs():
    model = small_model(resolutions=(16, 8))
    c = model.costs()
    clips = torch.randn(3, 8, 1, 16, 16)
    informative = torch.zeros(3, 8, dtype=torch.bool)
    informative[:, 2] = True
    informative[0, 5] = True
    r = build_baseline("uniform", model, k=4, res_index=1)(clips)
    assert r.per_res.tolist() == [[0, 4]] * 3 and r.flops.tolist() == [4.0 * c.backbone[1]] * 3
    r = build_baseline("dense_top", model)(clips)
    assert r.flops.tolist() == [8.0 * c.top] * 3
    r = build_baseline("oracle", model)(clips, informative)
    assert r.per_res[:, 0].tolist() == [2, 1, 1]
    with pytest.raises(ValueError, match="informative"):
        build_baseline("oracle", model)(clips)
    r = build_baseline("frame_exit", model, threshold=1.0)(clips)  # never confident enough: all frames
    assert r.per_res[:, 0].tolist() == [8, 8, 8]
    r = build_baseline("frame_exit", model, threshold=1e-6)(clips)  # always confident: one frame
    assert r.per_res[:, 0].tolist() == [1, 1, 1]
    r = build_baseline("random", model, probs=(0.5, 0.0), seed=0)(torch.randn(400, 8, 1, 16, 16))
    assert r.per_res[:, 1].sum() == 0 and abs(r.per_res[:, 0].double().mean() - 4.0) < 0.3
    with pytest.raises(ValueError, match="probs"):
        build_baseline("random", model, probs=(0.7, 0.6))
    with pytest.raises(ValueError, match="res_index"):
        build_baseline("uniform", model, k=2, res_index=5)
