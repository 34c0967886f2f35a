"""Skip bookkeeping, really-skipping inference and per-video FLOPs on hand-made decision sequences."""

import torch
from torch import nn

from adaptive_frames.actions import ActionSpace, skip_bookkeeping
from adaptive_frames.flops import FrameCosts, video_flops
from tests.adaptive_frames.af_testutils import CountingNet, ScriptedPolicy, scripted_clips, small_model

# resolutions (16, 8), skips (1, 2, 4): actions 0 = r16, 1 = r8, 2 = skip1, 3 = skip2, 4 = skip4
SPACE = ActionSpace((16, 8), (1, 2, 4))
SEQ = torch.tensor([[0, 4, 9, 9, 9, 1, 3, 9, 2, 0, 1, 3]])  # 9 = never read (frame not looked at)
LOOKED = [1, 1, 0, 0, 0, 1, 1, 0, 1, 1, 1, 1]
TAKEN = [0, 4, -1, -1, -1, 1, 3, -1, 2, 0, 1, 3]


def test_skip_bookkeeping_hand_made_sequence():
    looked, taken = skip_bookkeeping(SEQ.clamp(max=4), SPACE)
    assert looked[0].long().tolist() == LOOKED
    assert taken[0].tolist() == TAKEN


def test_skip_at_end_of_clip_does_not_overrun():
    looked, taken = skip_bookkeeping(torch.tensor([[0, 0, 4, 0]]), SPACE)
    assert looked[0].long().tolist() == [1, 1, 1, 0]


def _scripted_model():
    model = small_model()
    costs = model.costs()  # counted on the real networks before they are swapped out
    model.policy = ScriptedPolicy(model.space.num_actions)
    model.backbones = nn.ModuleList([CountingNet(3), CountingNet(3)])
    return model, costs


def test_inference_follows_skips_and_each_backbone_gets_only_its_frames():
    model, costs = _scripted_model()
    # two videos: the hand-made one, and one that only ever skips 1 or goes to the cheap backbone
    seq2 = torch.tensor([[2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1]])
    clips = scripted_clips(torch.cat([SEQ.clamp(max=4), seq2]))
    res = model.infer(clips)
    assert res.actions[0].tolist() == TAKEN
    assert res.actions[1].tolist() == seq2[0].tolist()
    assert res.looked.tolist() == [sum(LOOKED), 12]
    assert model.policy.frames_seen == sum(LOOKED) + 12  # the policy ran on looked-at frames only
    top, cheap = model.backbones
    # video 0 sends frames 0 and 9 to r16; video 1 sends none. Frame values say which action they carry.
    assert sorted(top.received) == [0.0, 0.0] and top.calls == 1
    assert sorted(cheap.received) == [1.0] * (2 + 6)
    assert res.per_res.tolist() == [[2, 2], [0, 6]]


def test_expensive_backbone_not_called_when_nothing_is_assigned():
    model, _ = _scripted_model()
    res = model.infer(scripted_clips(torch.tensor([[1, 2, 3, 9, 1, 4, 9, 9, 9]]).clamp(max=4)))
    assert model.backbones[0].calls == 0 and model.backbones[0].received == []
    assert res.per_res[0, 0] == 0


def test_per_video_flops_equal_hand_computation():
    model, costs = _scripted_model()
    # tiny_cnn (width 8, depth 2, C=1, K=3) at side r: MACs = r^2*8*9 + (r/2)^2*16*8*9 + (r/4)^2*32*16*9 + 32*3
    def tiny_macs(r, out):
        return r * r * 8 * 9 + (r // 2) ** 2 * 16 * 8 * 9 + (r // 4) ** 2 * 32 * 16 * 9 + 32 * out

    assert costs.backbone == (2 * tiny_macs(16, 3), 2 * tiny_macs(8, 3))
    # policy: encoder at 8 px to 8 features + GRUCell(8, 8) (3*8*(8+8) MACs) + head (8 -> 5 actions)
    assert costs.policy == 2 * (tiny_macs(8, 8) + 3 * 8 * 16 + 8 * 5)
    res = model.infer(scripted_clips(SEQ.clamp(max=4)))
    hand = sum(LOOKED) * costs.policy + 2 * costs.backbone[0] + 2 * costs.backbone[1]
    assert res.flops.tolist() == [float(hand)]


def test_video_flops_formula():
    c = FrameCosts(policy=10, backbone=(1000, 300))
    out = video_flops(c, torch.tensor([4, 0]), torch.tensor([[1, 2], [3, 0]]))
    assert out.tolist() == [4 * 10 + 1000 + 600, 3000]


def test_training_pass_applies_the_same_skips_as_inference():
    model, _ = _scripted_model()
    clips = scripted_clips(SEQ.clamp(max=4))
    frame_logits = torch.zeros(1, 12, 2, 3)
    out = model.forward_train(clips, tau=1.0, frame_logits=frame_logits, deterministic=True)
    assert out.looked[0].tolist() == [float(v) for v in LOOKED]
    taken = torch.where(out.looked.bool(), out.decisions.argmax(-1), -1)
    assert taken[0].tolist() == TAKEN
    costs = model.costs()
    assert float(out.flops[0].detach()) == sum(LOOKED) * costs.policy + 2 * costs.backbone[0] + 2 * costs.backbone[1]


def test_training_skip_gradient_reaches_covered_frames():
    """Whether frame 1 is looked at depends differentiably on the skip decision at frame 0 (the cover is not
    detached bookkeeping), so the cost of frames a skip jumps over trains the skip actions."""
    model, _ = _scripted_model()
    model.policy = ScriptedPolicy(model.space.num_actions, scale=1.0)  # unsaturated softmax
    clips = scripted_clips(torch.tensor([[4, 0, 0, 0, 0]]))
    out = model.forward_train(clips, tau=1.0, frame_logits=torch.zeros(1, 5, 2, 3), deterministic=True)
    assert out.looked[0].tolist() == [1.0, 0.0, 0.0, 0.0, 1.0]
    (g,) = torch.autograd.grad(out.looked[0, 1], model.policy.bias)
    assert g[4] < 0  # more skip-4 at frame 0 -> frame 1 less looked at
    assert g.abs().sum() > 0


def test_chunked_backbone_calls_equal_one_call():
    """run_assigned feeds each backbone `chunk` frames at a time: same logits and counts as one big call."""
    from adaptive_frames.inference import run_assigned

    torch.manual_seed(0)
    model = small_model().eval()
    clips = torch.randn(5, 6, model.cfg.in_channels, 16, 16)
    assign = torch.randint(-1, model.space.num_resolutions, (5, 6))
    with torch.no_grad():
        one = run_assigned(model.backbones, model.space.resolutions, clips, assign, model.cfg.num_classes, chunk=1000)
        many = run_assigned(model.backbones, model.space.resolutions, clips, assign, model.cfg.num_classes, chunk=4)
    assert torch.allclose(one[0], many[0], atol=1e-6) and torch.equal(one[1], many[1])
