"""The policy-head action (ModelConfig.policy_as_backbone, AR-Net's policy as the cheapest backbone): action space,
really-skipping inference and per-video FLOPs on hand-made decisions, gradients, and its pretraining stage."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adaptive_frames.actions import ActionSpace, skip_bookkeeping
from adaptive_frames.data.loader import ClipLoader
from adaptive_frames.flops import FrameCosts, video_flops
from adaptive_frames.stages import evaluate, pretrain_policy_head
from tests.adaptive_frames.af_testutils import CountingNet, ScriptedPolicy, scripted_clips, small_model

# resolutions (16, 8), policy head, skips (1, 2, 4): 0 = r16, 1 = r8, 2 = policy, 3 = skip1, 4 = skip2, 5 = skip4
SEQ = torch.tensor([[2, 0, 5, 9, 9, 9, 2, 1, 4, 9, 2, 3]])  # 9 = never read (frame not looked at)
LOOKED = [1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 1, 1]
TAKEN = [2, 0, 5, -1, -1, -1, 2, 1, 4, -1, 2, 3]
HEAD_ROW = torch.tensor([1.0, 2.0, 3.0])  # the scripted head's logits for every frame it classifies


class HeadScriptedPolicy(ScriptedPolicy):
    """ScriptedPolicy with a classification head that records the frames it classifies (by their value)."""

    def __init__(self, num_actions: int, scale: float = 100.0) -> None:
        super().__init__(num_actions, scale)
        self.classified: list[float] = []

    def classify(self, feat):
        self.classified += feat.flatten().tolist()
        return HEAD_ROW.expand(*feat.shape[:-1], 3)


def _scripted_model():
    model = small_model(policy_as_backbone=True)
    costs = model.costs()  # counted on the real networks before they are swapped out
    model.policy = HeadScriptedPolicy(model.space.num_actions)
    model.backbones = nn.ModuleList([CountingNet(3), CountingNet(3)])
    return model, costs


def test_action_space_names_and_indices():
    space = ActionSpace((16, 8), (1, 2, 4), policy_head=True)
    assert space.names() == ["r16", "r8", "policy", "skip1", "skip2", "skip4"]
    assert space.num_actions == 6 and space.num_processing == 3 and space.head_index == 2
    assert space.skip_lengths().tolist() == [0, 0, 0, 1, 2, 4]
    looked, taken = skip_bookkeeping(SEQ.clamp(max=5), space)
    assert looked[0].long().tolist() == LOOKED and taken[0].tolist() == TAKEN


def test_flag_off_leaves_the_model_unchanged():
    off, on = small_model(), small_model(policy_as_backbone=True)
    assert off.space.num_actions == 5 and off.space.names() == ["r16", "r8", "skip1", "skip2", "skip4"]
    assert off.space.head_index is None and off.policy.classifier is None and off.costs().policy_head == 0
    assert on.space.num_actions == 6 and on.policy.classifier is not None
    assert on.costs().backbone == off.costs().backbone


def test_head_cost_is_the_counted_linear_layer():
    costs = small_model(policy_as_backbone=True).costs()
    assert costs.policy_head == 2 * 8 * 3  # Linear(feature_dim=8 -> 3 classes): 24 MACs
    assert costs.policy_head < costs.backbone[-1] / 100  # far below the cheapest backbone


def test_inference_head_frames_run_no_backbone_and_flops_equal_hand_computation():
    model, costs = _scripted_model()
    all_head = torch.full((1, 12), 2)
    res = model.infer(scripted_clips(torch.cat([SEQ.clamp(max=5), all_head])))
    assert res.actions[0].tolist() == TAKEN and res.actions[1].tolist() == [2] * 12
    assert res.looked.tolist() == [sum(LOOKED), 12]
    top, cheap = model.backbones
    assert top.received == [0.0] and cheap.received == [1.0]  # no head frame (value 2) reached a backbone
    assert model.policy.classified == [2.0] * (3 + 12)  # the head ran on exactly the frames that chose it
    assert res.per_res.tolist() == [[1, 1], [0, 0]] and res.head.tolist() == [3, 12]
    hand0 = sum(LOOKED) * costs.policy + 3 * costs.policy_head + costs.backbone[0] + costs.backbone[1]
    hand1 = 12 * costs.policy + 12 * costs.policy_head
    assert res.flops.tolist() == [float(hand0), float(hand1)]
    # logits: mean over processed frames (backbones give zeros here, the head HEAD_ROW)
    assert torch.allclose(res.logits, torch.stack([HEAD_ROW * 3 / 5, HEAD_ROW]))


def test_video_flops_with_head_frames():
    c = FrameCosts(policy=10, backbone=(1000, 300), policy_head=2)
    out = video_flops(c, torch.tensor([4, 6]), torch.tensor([[1, 2], [0, 0]]), torch.tensor([1, 6]))
    assert out.tolist() == [4 * 10 + 1000 + 600 + 2, 6 * 10 + 6 * 2]


def test_training_pass_mixes_the_head_and_charges_its_cost():
    model, costs = _scripted_model()
    clips = scripted_clips(SEQ.clamp(max=5))
    out = model.forward_train(clips, tau=1.0, frame_logits=torch.zeros(1, 12, 2, 3), deterministic=True)
    taken = torch.where(out.looked.bool(), out.decisions.argmax(-1), -1)
    assert taken[0].tolist() == TAKEN
    hand = sum(LOOKED) * costs.policy + 3 * costs.policy_head + costs.backbone[0] + costs.backbone[1]
    assert float(out.flops[0].detach()) == hand
    assert torch.allclose(out.logits[0].detach(), HEAD_ROW * 3 / 5)


def test_training_gradient_reaches_the_head():
    model = small_model(policy_as_backbone=True)
    with torch.no_grad():
        model.policy.head.bias[model.space.head_index] = 10.0  # the head is chosen, whatever the noise
    g = torch.Generator().manual_seed(0)
    clips, labels = torch.randn(4, 5, 1, 16, 16, generator=g), torch.tensor([0, 1, 2, 0])
    out = model.forward_train(clips, tau=1.0, generator=g)
    assert out.decisions[..., model.space.head_index].sum() > 0
    F.cross_entropy(out.logits, labels).backward()
    assert model.policy.classifier.weight.grad.abs().sum() > 0
    assert model.policy.encoder.head.weight.grad.abs().sum() > 0  # through the head into the encoder


def _brightness_data(n=32, t=4):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 3
    clips = labels.float()[:, None, None, None, None] + 0.3 * torch.randn(n, t, 1, 16, 16, generator=g)
    return clips, labels


def test_pretrain_policy_head_learns_a_frame_classifier():
    model = small_model(policy_as_backbone=True)
    clips, labels = _brightness_data()
    params = [*model.policy.encoder.parameters(), *model.policy.classifier.parameters()]
    cell = [p.clone() for p in model.policy.cell.parameters()]
    hist = pretrain_policy_head(model, ClipLoader(clips, labels, 8, shuffle=True), torch.optim.Adam(params, 1e-2), 8)
    assert hist[-1]["loss"] < 0.5 * hist[0]["loss"]
    assert hist[-1]["acc"] > 0.9
    assert all(torch.equal(a, b) for a, b in zip(cell, model.policy.cell.parameters()))
    with pytest.raises(ValueError, match="policy_as_backbone"):
        pretrain_policy_head(small_model(), [], torch.optim.SGD(params, 0.1), 1)


def test_evaluate_reports_head_frames_only_where_there_are_any():
    model = small_model(policy_as_backbone=True)
    clips, labels = _brightness_data(n=8)
    loader = ClipLoader(clips, labels, 4, shuffle=False)
    out = evaluate(lambda x, idx: model.infer(x), loader, model.dense_flops(4))
    processed = out["frames/backbone0"] + out["frames/backbone1"] + out["frames/policy_head"]
    assert 0 <= processed <= out["frames/looked"] <= 4
    off = small_model()
    assert "frames/policy_head" not in evaluate(lambda x, idx: off.infer(x), loader, off.dense_flops(4))
