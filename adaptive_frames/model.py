"""AR-Net-style adaptive model: policy + one backbone per resolution, trained with ST Gumbel, run really skipping."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .actions import ActionSpace
from .backbones import build_backbone
from .flops import FrameCosts, feature_flops, frame_flops, video_flops
from .gumbel import gumbel_softmax_st, straight_through
from .inference import VideoResult, merge_means, resize, run_assigned
from .policy import Policy, PolicyConfig, PolicyStep


@dataclass
class ModelConfig:
    num_classes: int = 8
    in_channels: int = 1
    backbone: str = "tiny_cnn"  # BACKBONES name, one per resolution (e.g. resnet50 at 224, resnet18 at 112)
    backbones: list[str] | None = None  # per resolution, highest first (AR-Net: resnet50, resnet34, resnet18)
    backbone_width_mult: float = 1.0
    resolutions: list[int] = field(default_factory=lambda: [64, 48, 32])
    skips: list[int] = field(default_factory=lambda: [1, 2, 4])
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    # AR-Net's policy as the cheapest backbone: one more action (after the resolutions, before the skips) whose
    # frame prediction is a linear head on the policy encoder's features; costs only the head's FLOPs.
    policy_as_backbone: bool = False


@dataclass
class TrainOutput:
    """logits [B, K]; decisions [B, T, A] (ST one-hot, zero rows where not looked); looked [B, T]; flops [B]."""

    logits: torch.Tensor
    decisions: torch.Tensor
    looked: torch.Tensor
    flops: torch.Tensor


class AdaptiveFrameModel(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.num_classes < 2 or cfg.in_channels < 1:
            raise ValueError(f"ModelConfig: num_classes={cfg.num_classes} must be >= 2, in_channels >= 1")
        self.cfg = cfg
        self.space = ActionSpace(tuple(cfg.resolutions), tuple(cfg.skips), policy_head=cfg.policy_as_backbone)
        names = list(cfg.backbones) if cfg.backbones else [cfg.backbone] * len(self.space.resolutions)
        if len(names) != len(self.space.resolutions):
            raise ValueError(f"ModelConfig: backbones={names} needs one name per resolution {cfg.resolutions}")
        self.backbones = nn.ModuleList(
            build_backbone(name, cfg.in_channels, cfg.num_classes, cfg.backbone_width_mult) for name in names
        )
        self.policy = Policy(cfg.policy, cfg.in_channels, self.space.num_actions,
                             num_classes=cfg.num_classes if cfg.policy_as_backbone else 0)
        self._costs: FrameCosts | None = None

    def costs(self) -> FrameCosts:
        """Per-frame forward FLOPs, counted once with meter.flops (architecture is fixed after construction)."""
        if self._costs is None:
            c, ps = self.cfg.in_channels, self.cfg.policy.input_size
            classifier = self.policy.classifier
            self._costs = FrameCosts(
                policy=frame_flops(PolicyStep(self.policy), c, ps),
                backbone=tuple(frame_flops(bb, c, r) for bb, r in zip(self.backbones, self.space.resolutions)),
                policy_head=0 if classifier is None else feature_flops(classifier, self.cfg.policy.feature_dim),
            )
        return self._costs

    def processing_costs(self) -> tuple[int, ...]:
        """[P] forward FLOPs per frame of each processing action (the backbones, then the policy head if any)."""
        costs = self.costs()
        return costs.backbone + ((costs.policy_head,) if self.space.policy_head else ())

    def dense_flops(self, num_frames: int) -> int:
        """The bound per video: every frame at the top resolution, no policy."""
        return num_frames * self.costs().top

    def lowres(self, clips: torch.Tensor) -> torch.Tensor:
        """[B, T, C, H, W] -> [B, T, C, s, s], the copy the policy sees."""
        b, t = clips.shape[:2]
        low = resize(clips.flatten(0, 1), self.cfg.policy.input_size)
        return low.view(b, t, *low.shape[1:])

    def frame_logits(self, clips: torch.Tensor) -> torch.Tensor:
        """Every backbone on every frame: [B, T, R, K]. Training only (dense by construction)."""
        b, t = clips.shape[:2]
        flat = clips.flatten(0, 1)
        outs = [bb(resize(flat, r)).view(b, t, -1) for bb, r in zip(self.backbones, self.space.resolutions)]
        return torch.stack(outs, dim=2)

    def with_head_logits(self, frame_logits: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """frame_logits [B, T, R, K], policy features [B, T, F] -> [B, T, P, K]: the policy head's logits appended
        as processing action R when the space has it (unchanged otherwise)."""
        if not self.space.policy_head:
            return frame_logits
        return torch.cat([frame_logits, self.policy.classify(feats)[:, :, None]], dim=2)

    def forward_train(
        self,
        clips: torch.Tensor,
        tau: float,
        frame_logits: torch.Tensor | None = None,
        low: torch.Tensor | None = None,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> TrainOutput:
        """Differentiable pass, vectorised over the batch (Python loop over time only).

        clips [B, T, C, H, W]; frame_logits [B, T, R, K] and low [B, T, C, s, s] may be passed precomputed (e.g.
        with frozen backbones). deterministic=True uses argmax decisions (fine-tuning with a frozen policy).
        shard (rank, world): the clips are rank's 1/world of a global batch (its Gumbel noise: gumbel_softmax_st).
        Skips are differentiable: frame t+m is looked at with weight 1 - (ST decision to skip over it).
        With the policy-head action, its logits (the head on `feats`) join frame_logits as one more processing
        action, mixed by the same ST decisions and charged the head's FLOPs.
        """
        b, t = clips.shape[:2]
        p_n = self.space.num_processing
        low = self.lowres(clips) if low is None else low
        feats = self.policy.encode(low.flatten(0, 1)).view(b, t, -1)
        frame_logits = self.frame_logits(clips) if frame_logits is None else frame_logits
        frame_logits = self.with_head_logits(frame_logits, feats)  # [B, T, P, K]
        state = self.policy.init_state(b, clips.device)
        cover = [clips.new_zeros(b) for _ in range(t)]
        decisions, looked_all = [], []
        for i in range(t):
            looked = 1.0 - cover[i]
            logits, new_state = self.policy.step(feats[:, i], state)
            a = straight_through(F.softmax(logits, -1)) if deterministic else gumbel_softmax_st(logits, tau, generator, shard)
            a = a * looked[:, None]
            state = looked[:, None] * new_state + (1.0 - looked[:, None]) * state
            for j, k in enumerate(self.space.skips):
                for m in range(1, min(k, t - i)):
                    cover[i + m] = cover[i + m] + a[:, p_n + j]
            decisions.append(a)
            looked_all.append(looked)
        d = torch.stack(decisions, dim=1)  # [B, T, A]
        lk = torch.stack(looked_all, dim=1)  # [B, T]
        w = d[..., :p_n]  # [B, T, P]
        count = w.sum(dim=(1, 2)).clamp(min=1.0)
        video_logits = (w[..., None] * frame_logits).sum(dim=(1, 2)) / count[:, None]
        bb = torch.tensor(self.processing_costs(), dtype=clips.dtype, device=clips.device)
        flops = self.costs().policy * lk.sum(dim=1) + (w * bb).sum(dim=(1, 2))
        return TrainOutput(logits=video_logits, decisions=d, looked=lk, flops=flops)

    @torch.no_grad()
    def infer(self, clips: torch.Tensor) -> VideoResult:
        """Deterministic (argmax) decisions; the policy runs only on looked-at frames, backbone i only on its frames,
        the policy head (if an action) only on the frames that chose it, from the features the policy computed."""
        was_training = self.training
        self.eval()
        try:
            b, t = clips.shape[:2]
            r_n, skip_len = self.space.num_resolutions, self.space.skip_lengths().to(clips.device)
            state = self.policy.init_state(b, clips.device)
            remaining = torch.zeros(b, dtype=torch.long, device=clips.device)
            actions = torch.full((b, t), -1, dtype=torch.long, device=clips.device)
            looked = torch.zeros(b, dtype=torch.long)
            head_sum, head = clips.new_zeros(b, self.cfg.num_classes), torch.zeros(b, dtype=torch.long)
            for i in range(t):
                idx = (remaining == 0).nonzero(as_tuple=True)[0]
                remaining = (remaining - 1).clamp(min=0)
                if idx.numel() == 0:
                    continue
                feat = self.policy.encode(resize(clips[idx, i], self.cfg.policy.input_size))
                logits, new_state = self.policy.step(feat, state[idx])
                state = state.index_copy(0, idx, new_state)
                a = logits.argmax(dim=1)
                actions[idx, i] = a
                remaining[idx] = (skip_len[a] - 1).clamp(min=0)
                looked[idx] += 1
                head_sum = self._head_frames(feat, a, idx, head_sum, head)
            assign = torch.where(actions < r_n, actions, -1)
            logits, per_res = run_assigned(self.backbones, self.space.resolutions, clips, assign, self.cfg.num_classes)
            if not self.space.policy_head:
                flops = video_flops(self.costs(), looked, per_res)
                return VideoResult(logits=logits, looked=looked, per_res=per_res, flops=flops, actions=actions)
            logits = merge_means(logits, per_res.sum(dim=1), head_sum, head)
            flops = video_flops(self.costs(), looked, per_res, head)
            return VideoResult(logits=logits, looked=looked, per_res=per_res, flops=flops, actions=actions, head=head)
        finally:
            self.train(was_training)

    def _head_frames(self, feat: torch.Tensor, a: torch.Tensor, idx: torch.Tensor, head_sum: torch.Tensor,
                     head: torch.Tensor) -> torch.Tensor:
        """The policy-head action at one time step: feat [n, F] and actions a [n] of videos idx [n]. Classifies only
        the frames that chose it; returns head_sum [B, K] + their logits, counts them in head [B] (in place)."""
        if not self.space.policy_head:
            return head_sum
        chose = a == self.space.head_index
        if not chose.any():
            return head_sum
        vid = idx[chose]
        head[vid.cpu()] += 1
        return head_sum.index_add(0, vid, self.policy.classify(feat[chose]))
