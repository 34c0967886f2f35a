"""Wall time of really-skipping inference vs AR-Net's released scheme (every backbone on every frame, then mask).

    python benchmarks/af_skip_speed.py

Uses a fixed decision pattern (the needle-task shape: every frame looked at by the policy, 3 of 16 frames at
64 px, 2 at 48 px, the rest skipped) so the comparison does not depend on training. Same process, same
networks, 1 thread, medians of repeats; ratios only (absolute times depend on the machine and its load).
"""

from __future__ import annotations

import statistics
import time

import torch

from adaptive_frames import AdaptiveFrameModel, ModelConfig, run_assigned
from adaptive_frames.inference import resize


def masked_all_backbones(model: AdaptiveFrameModel, clips: torch.Tensor, assign: torch.Tensor) -> torch.Tensor:
    """AR-Net released-code style: run all backbones on all frames, keep the chosen logits."""
    logits = model.frame_logits(clips)  # [B, T, R, K]
    onehot = torch.nn.functional.one_hot(assign.clamp(min=0), logits.shape[2]).float() * (assign >= 0)[..., None]
    return (onehot[..., None] * logits).sum(dim=(1, 2)) / onehot.sum(dim=(1, 2)).clamp(min=1)[:, None]


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = AdaptiveFrameModel(ModelConfig()).eval()
    b, t = 32, 16
    clips = torch.randn(b, t, 1, 64, 64)
    assign = torch.full((b, t), -1)
    assign[:, [1, 7, 12]] = 0
    assign[:, [4, 10]] = 1

    def policy_pass():
        return model.policy.encode(resize(clips.flatten(0, 1), model.cfg.policy.input_size))

    def skip():
        policy_pass()
        return run_assigned(model.backbones, model.space.resolutions, clips, assign, model.cfg.num_classes)[0]

    def masked():
        policy_pass()
        return masked_all_backbones(model, clips, assign)

    with torch.no_grad():
        assert torch.allclose(skip(), masked(), atol=1e-5)  # same answer
        times = {"skip": [], "masked": []}
        for _ in range(7):
            for name, fn in (("skip", skip), ("masked", masked)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    c = model.costs()
    flops_skip = t * c.policy + 3 * c.backbone[0] + 2 * c.backbone[1]
    flops_mask = t * c.policy + t * sum(c.backbone)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"counted FLOPs/video: skip {flops_skip / 1e9:.4f} G, masked {flops_mask / 1e9:.4f} G, "
          f"ratio {flops_skip / flops_mask:.3f}")
    print(f"median wall per batch of {b}: skip {med['skip'] * 1e3:.1f} ms, masked {med['masked'] * 1e3:.1f} ms, "
          f"ratio {med['skip'] / med['masked']:.3f}")


if __name__ == "__main__":
    main()
