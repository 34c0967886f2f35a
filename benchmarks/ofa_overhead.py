"""Once-for-all overheads, measured side by side in one process (interleaved rounds, median of paired ratios):

1. training step (forward + backward + SGD step) of the supernet at a fixed sub-net config vs the exported static
   model of that config: the cost of dynamic slicing and kernel transforms (target <= 1.25x);
2. inference of the exported model vs a hand-written static model of the same shape built from plain nn layers
   (target <= 1.05x: the export carries no elastic code).

    python benchmarks/ofa_overhead.py                 # MNIST-1D supernet, largest and a mid sub-net
    python benchmarks/ofa_overhead.py --dims 2 --res 28 --batch 64
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from once_for_all import ArchSpace, SubnetConfig, SupernetSpec  # noqa: E402
from once_for_all.export import export_subnet  # noqa: E402
from once_for_all.supernet import OFASupernet, block_geometry  # noqa: E402

CONV = {1: nn.Conv1d, 2: nn.Conv2d}
BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}


class HandSE(nn.Module):
    def __init__(self, c: int, mid: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(c, mid), nn.ReLU(), nn.Linear(mid, c), nn.Hardsigmoid())

    def forward(self, x):
        s = self.fc(x.mean(dim=tuple(range(2, x.dim()))))
        return x * s.view(*s.shape, *([1] * (x.dim() - 2)))


class HandBlock(nn.Module):
    def __init__(self, d: int, cin: int, mid: int, cout: int, k: int, stride: int, se_mid: int) -> None:
        super().__init__()
        layers = [CONV[d](cin, mid, 1, bias=False), BN[d](mid), nn.Hardswish(),
                  CONV[d](mid, mid, k, stride, k // 2, groups=mid, bias=False), BN[d](mid), nn.Hardswish()]
        if se_mid:
            layers.append(HandSE(mid, se_mid))
        layers += [CONV[d](mid, cout, 1, bias=False), BN[d](cout)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def hand_written(spec: SupernetSpec, cfg: SubnetConfig) -> nn.Module:
    """The sub-net `cfg` written out with plain nn layers (no once_for_all code in its forward)."""
    d = spec.dims
    layers = [CONV[d](spec.in_channels, spec.stem_channels, 3, spec.stem_stride, 1, bias=False),
              BN[d](spec.stem_channels), nn.Hardswish()]
    for s, i, b in cfg.active_blocks(spec):
        g = block_geometry(spec, s, i)
        mid = spec.mid_channels(g["cin"], cfg.expands[b])
        layers.append(HandBlock(d, g["cin"], mid, g["cout"], cfg.kernels[b], g["stride"],
                                spec.se_channels(mid) if g["se"] else 0))
    layers += [CONV[d](spec.stage_widths[-1], spec.head_channels, 1, bias=False), BN[d](spec.head_channels),
               nn.Hardswish(), nn.Flatten(2), Mean(), nn.Linear(spec.head_channels, spec.num_classes)]
    return nn.Sequential(*layers)


class Mean(nn.Module):
    def forward(self, x):
        return x.mean(-1)


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x, y) -> None:
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


def paired_ratio(fn_a, fn_b, rounds: int, inner: int) -> tuple[float, float, float]:
    """Median, q25 and q75 of per-round time(a) / time(b), a and b alternating in shuffled order."""
    ratios = []
    for _ in range(rounds):
        t = {}
        for name, fn in random.sample([("a", fn_a), ("b", fn_b)], 2):
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            t[name] = time.perf_counter() - start
        ratios.append(t["a"] / t["b"])
    q = statistics.quantiles(ratios, n=4)
    return statistics.median(ratios), q[0], q[2]


def measure(spec: SupernetSpec, cfg: SubnetConfig, x, y, rounds: int):
    """(training-step ratio supernet/exported, inference ratio exported/hand-written), each (median, q25, q75)."""
    net = OFASupernet(spec)
    net.set_active(cfg)
    static = export_subnet(net, cfg)
    hand = hand_written(spec, cfg)
    opt_net = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    opt_static = torch.optim.SGD(static.parameters(), lr=0.01, momentum=0.9)
    for _ in range(3):
        train_step(net, opt_net, x, y), train_step(static, opt_static, x, y)
    step = paired_ratio(lambda: train_step(net, opt_net, x, y), lambda: train_step(static, opt_static, x, y),
                        rounds, 5)
    static.eval(), hand.eval()
    sd = static.state_dict()  # after training: the hand-written model gets the same weights
    ordered = [v for part in ("stem.", "blocks.", "head.", "classifier.") for k, v in sd.items() if k.startswith(part)]
    hand.load_state_dict(dict(zip(hand.state_dict(), ordered, strict=True)))
    with torch.inference_mode():
        assert torch.allclose(static(x), hand(x), atol=1e-5), "hand-written model differs from the export"
        infer = paired_ratio(lambda: static(x), lambda: hand(x), rounds, 20)
    return step, infer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dims", type=int, default=1)
    p.add_argument("--res", type=int, default=40)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    spec = SupernetSpec(dims=a.dims, in_channels=1, num_classes=10, stem_channels=16, stage_widths=(24, 32, 48),
                        stage_strides=(1, 2, 2), stage_se=(False, True, True), resolutions=(a.res,))
    space = ArchSpace.full(spec)
    mid = space.sample(random.Random(0))
    x = torch.randn(a.batch, 1, *(a.res,) * a.dims)
    y = torch.randint(0, 10, (a.batch,))
    print(f"threads={a.threads} batch={a.batch} dims={a.dims} res={a.res}")
    print("| sub-net | supernet step / exported step [q25, q75] | exported infer / hand-written infer [q25, q75] |")
    print("|---|---|---|")
    for name, cfg in (("largest", space.largest()), ("random", mid), ("smallest", space.smallest())):
        step, infer = measure(spec, cfg, x, y, a.rounds)
        print(f"| {name} `{cfg}` | {step[0]:.3f} [{step[1]:.3f}, {step[2]:.3f}] | "
              f"{infer[0]:.3f} [{infer[1]:.3f}, {infer[2]:.3f}] |")

if __name__ == "__main__":
    main()
