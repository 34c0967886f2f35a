"""The elastic architecture space of a once-for-all supernet (Cai et al. 2020) as plain, hashable data.

`SupernetSpec` fixes the whole supernet (stages, widths, the values each elastic dimension may take);
`SubnetConfig` is one sub-network (per-block kernel and expand ratio, per-stage depth, input resolution);
`ArchSpace` is the part of the spec open at a moment (a progressive-shrinking phase opens more of it) and
samples, mutates, crosses over and encodes configs inside it.

Blocks are numbered stage-major: stage s owns blocks [s * max_depth, (s + 1) * max_depth); a stage of depth D
runs its first D blocks, the others are "skipped" but keep their kernel/expand genes (as OFA's search does).
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field, replace

import torch

ACTIVATIONS = ("relu", "hswish")


def make_divisible(v: float, divisor: int) -> int:
    """OFA/MobileNet channel rounding: nearest multiple of `divisor` (half up), never below 90% of `v`."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _fmt(x: float) -> str:
    return f"{x:g}".replace(".", "p")  # "." separates genes in the config string; 2.5 -> "2p5"


@dataclass(frozen=True)
class SupernetSpec:
    """The whole elastic space. x: [B, in_channels, L] (dims=1) or [B, in_channels, H, W] (dims=2).

    ImageNet OFA-MobileNetV3: stem 16 (stride 2) + a fixed first block of 16 channels, 5 stages of 4 blocks,
    head 960 -> pool -> feature 1280 -> classifier, channel_divisor 8 (see tests/once_for_all/test_flops.py).
    """

    dims: int
    in_channels: int
    num_classes: int
    stem_channels: int
    stage_widths: tuple[int, ...]
    stage_strides: tuple[int, ...]
    stage_se: tuple[bool, ...]
    kernel_sizes: tuple[int, ...] = (3, 5, 7)
    expand_ratios: tuple[float, ...] = (3, 4, 6)
    depths: tuple[int, ...] = (2, 3, 4)
    resolutions: tuple[int, ...] = (40,)
    head_channels: int = 128  # final 1x1 expansion before global pooling
    stem_stride: int = 1
    first_block_channels: int = 0  # >0: a fixed (non-elastic) depthwise-separable block after the stem
    feature_channels: int = 0  # >0: a 1x1 (linear) layer after pooling, before the classifier (MobileNetV3)
    stage_acts: tuple[str, ...] = ()  # per stage, from ACTIVATIONS; () = hswish everywhere
    se_reduction: int = 4
    channel_divisor: int = 1  # expanded / SE widths rounded to multiples of this (8 on ImageNet)
    dropout: float = 0.0  # before the classifier, in training only (OFA-MobileNetV3: 0.1)

    def __post_init__(self) -> None:
        for name in ("stage_widths", "stage_strides", "stage_se", "kernel_sizes", "expand_ratios", "depths",
                     "resolutions", "stage_acts"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # lists from configs -> hashable
        if not self.stage_acts:
            object.__setattr__(self, "stage_acts", ("hswish",) * len(self.stage_widths))
        n = len(self.stage_widths)

        def check(ok: bool, name: str, allowed: str) -> None:
            if not ok:
                raise ValueError(f"SupernetSpec.{name}={getattr(self, name)!r}; allowed: {allowed}")

        check(self.dims in (1, 2), "dims", "1 or 2")
        check(n >= 1 and all(w > 0 for w in self.stage_widths), "stage_widths", "one or more positive ints")
        for name in ("stage_strides", "stage_se", "stage_acts"):
            check(len(getattr(self, name)) == n, name, f"{n} entries (one per stage)")
        check(all(s in (1, 2) for s in self.stage_strides), "stage_strides", "each 1 or 2")
        check(all(a in ACTIVATIONS for a in self.stage_acts), "stage_acts", f"each one of {ACTIVATIONS}")
        for name in ("kernel_sizes", "expand_ratios", "depths", "resolutions"):
            v = getattr(self, name)
            check(len(v) >= 1 and list(v) == sorted(set(v)) and min(v) > 0, name,
                  "one or more positive values, ascending, no repeats")
        check(all(k % 2 == 1 for k in self.kernel_sizes), "kernel_sizes", "odd sizes")
        for name in ("in_channels", "num_classes", "stem_channels", "head_channels", "se_reduction",
                     "channel_divisor"):
            check(getattr(self, name) > 0, name, "> 0")
        check(self.stem_stride in (1, 2), "stem_stride", "1 or 2")
        check(0 <= self.dropout < 1, "dropout", "[0, 1)")
        check(self.first_block_channels >= 0 and self.feature_channels >= 0,
              "first_block_channels" if self.first_block_channels < 0 else "feature_channels", ">= 0")

    @property
    def num_stages(self) -> int:
        return len(self.stage_widths)

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    @property
    def num_blocks(self) -> int:
        return self.num_stages * self.max_depth

    @property
    def k_max(self) -> int:
        return max(self.kernel_sizes)

    @property
    def trunk_channels(self) -> int:
        """Channels entering the first elastic stage (after stem and the optional first block)."""
        return self.first_block_channels or self.stem_channels

    def stage_blocks(self, stage: int) -> range:
        return range(stage * self.max_depth, (stage + 1) * self.max_depth)

    def block_in_channels(self, stage: int, index: int) -> int:
        """Input channels of block `index` (0-based) of `stage`."""
        if index > 0:
            return self.stage_widths[stage]
        return self.stage_widths[stage - 1] if stage > 0 else self.trunk_channels

    def mid_channels(self, in_channels: int, expand: float) -> int:
        """Expanded (depthwise) width of a block with `in_channels` inputs at expand ratio `expand`."""
        return make_divisible(round(in_channels * expand), self.channel_divisor)

    def se_channels(self, mid: int) -> int:
        return make_divisible(mid // self.se_reduction, self.channel_divisor)


_PART = re.compile(r"^([rdke])(.+)$")


@dataclass(frozen=True)
class SubnetConfig:
    """One sub-network: per-block `kernels` and `expands` (spec.num_blocks each, skipped blocks included),
    per-stage `depths`, input `resolution`. Printed as "r40-d2.3.4-k3.5.7...-e3.4.6..."."""

    kernels: tuple[int, ...]
    expands: tuple[float, ...]
    depths: tuple[int, ...]
    resolution: int

    def __post_init__(self) -> None:
        for name in ("kernels", "expands", "depths"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def __str__(self) -> str:
        return (f"r{self.resolution}-d{'.'.join(map(str, self.depths))}-k{'.'.join(map(str, self.kernels))}"
                f"-e{'.'.join(map(_fmt, self.expands))}")

    @classmethod
    def parse(cls, s: str) -> SubnetConfig:
        """Inverse of str(); ValueError naming the bad part and the expected form."""
        form = "expected 'r<int>-d<int>.<int>...-k<int>.<int>...-e<num>.<num>...'"
        parts = s.strip().split("-")
        found = {}
        for part in parts:
            m = _PART.match(part)
            if not m or m.group(1) in found:
                raise ValueError(f"SubnetConfig.parse({s!r}): bad part {part!r}; {form}")
            found[m.group(1)] = m.group(2)
        if set(found) != set("rdke"):
            raise ValueError(f"SubnetConfig.parse({s!r}): missing part(s) {sorted(set('rdke') - set(found))}; {form}")
        try:
            return cls(kernels=tuple(int(v) for v in found["k"].split(".")),
                       expands=tuple(float(v.replace("p", ".")) for v in found["e"].split(".")),
                       depths=tuple(int(v) for v in found["d"].split(".")), resolution=int(found["r"]))
        except ValueError as e:
            raise ValueError(f"SubnetConfig.parse({s!r}): {e}; {form}") from None

    def key(self) -> str:
        """Stable short id: first 10 hex chars of md5(str(self))."""
        return hashlib.md5(str(self).encode()).hexdigest()[:10]

    def active_blocks(self, spec: SupernetSpec) -> list[tuple[int, int, int]]:
        """(stage, index in stage, global block index) of every block this sub-net runs, in order."""
        return [(s, i, spec.stage_blocks(s)[i]) for s, d in enumerate(self.depths) for i in range(d)]

    def canonical(self, spec: SupernetSpec) -> SubnetConfig:
        """Skipped blocks' kernel/expand set to the spec's max, so configs of the same network compare equal."""
        active = {b for _, _, b in self.active_blocks(spec)}
        return replace(self, kernels=tuple(k if b in active else spec.k_max for b, k in enumerate(self.kernels)),
                       expands=tuple(e if b in active else max(spec.expand_ratios)
                                     for b, e in enumerate(self.expands)))


@dataclass(frozen=True)
class ArchSpace:
    """The values open at a moment; each a sorted subset of the spec's. Encodings use the spec's full sets, so
    their size is the same in every phase."""

    spec: SupernetSpec
    kernel_sizes: tuple[int, ...] = field(default=())
    expand_ratios: tuple[float, ...] = field(default=())
    depths: tuple[int, ...] = field(default=())
    resolutions: tuple[int, ...] = field(default=())

    DIMS = ("kernel_sizes", "expand_ratios", "depths", "resolutions")

    def __post_init__(self) -> None:
        for name in self.DIMS:
            full = getattr(self.spec, name)
            v = tuple(getattr(self, name)) or full  # empty = the spec's full set
            bad = [x for x in v if x not in full]
            if bad:
                raise ValueError(f"ArchSpace.{name}={list(v)}: {bad} not in the spec's set; allowed: {list(full)}")
            object.__setattr__(self, name, tuple(sorted(set(v))))

    @classmethod
    def full(cls, spec: SupernetSpec) -> ArchSpace:
        return cls(spec)

    def validate(self, cfg: SubnetConfig) -> None:
        """ValueError naming the field, block/stage, value and allowed values. Skipped blocks are checked
        against the spec's full sets only (they carry genes, not weights in use)."""
        spec = self.spec
        for name, n in (("kernels", spec.num_blocks), ("expands", spec.num_blocks), ("depths", spec.num_stages)):
            if len(getattr(cfg, name)) != n:
                raise ValueError(f"SubnetConfig.{name} has {len(getattr(cfg, name))} entries ({cfg}); allowed: "
                                 f"{n} ({'one per block' if n == spec.num_blocks else 'one per stage'})")
        self._check("resolution", None, cfg.resolution, self.resolutions)
        for s, d in enumerate(cfg.depths):
            self._check("depths", f"stage {s}", d, self.depths)
        active = {b for _, _, b in cfg.active_blocks(spec)}
        for b in range(spec.num_blocks):
            on = b in active
            self._check("kernels", f"block {b}", cfg.kernels[b], self.kernel_sizes if on else spec.kernel_sizes)
            self._check("expands", f"block {b}", cfg.expands[b], self.expand_ratios if on else spec.expand_ratios)

    @staticmethod
    def _check(name: str, where: str | None, value, allowed) -> None:
        if value not in allowed:
            at = f"[{where}]" if where else ""
            raise ValueError(f"SubnetConfig.{name}{at}={value!r} not allowed; allowed: {list(allowed)}")

    def _uniform(self, k: int, e: float, d: int, r: int) -> SubnetConfig:
        n = self.spec.num_blocks
        return SubnetConfig((k,) * n, (e,) * n, (d,) * self.spec.num_stages, r).canonical(self.spec)

    def largest(self) -> SubnetConfig:
        return self._uniform(self.kernel_sizes[-1], self.expand_ratios[-1], self.depths[-1], self.resolutions[-1])

    def smallest(self) -> SubnetConfig:
        return self._uniform(self.kernel_sizes[0], self.expand_ratios[0], self.depths[0], self.resolutions[0])

    def corners(self) -> dict[str, SubnetConfig]:
        """The 8 configs with depth, width (expand) and kernel each at its min or max, largest resolution."""
        pick = {"min": 0, "max": -1}
        return {f"d{d}-e{e}-k{k}": self._uniform(self.kernel_sizes[pick[k]], self.expand_ratios[pick[e]],
                                                 self.depths[pick[d]], self.resolutions[-1])
                for d in pick for e in pick for k in pick}

    def sample(self, rng: random.Random) -> SubnetConfig:
        """Uniform per block (kernel, expand), per stage (depth) and resolution, as OFA samples."""
        n = self.spec.num_blocks
        return SubnetConfig(tuple(rng.choice(self.kernel_sizes) for _ in range(n)),
                            tuple(rng.choice(self.expand_ratios) for _ in range(n)),
                            tuple(rng.choice(self.depths) for _ in range(self.spec.num_stages)),
                            rng.choice(self.resolutions))

    def mutate(self, cfg: SubnetConfig, rng: random.Random, prob: float = 0.1,
               resolution_prob: float = 0.5) -> SubnetConfig:
        """Each gene resampled from the space with probability `prob` (resolution: `resolution_prob`). Genes
        outside the space (a config from a wider phase) are resampled too, so the result is always inside."""
        def gene(v, allowed, p):
            return rng.choice(allowed) if v not in allowed or rng.random() < p else v

        return SubnetConfig(tuple(gene(k, self.kernel_sizes, prob) for k in cfg.kernels),
                            tuple(gene(e, self.expand_ratios, prob) for e in cfg.expands),
                            tuple(gene(d, self.depths, prob) for d in cfg.depths),
                            gene(cfg.resolution, self.resolutions, resolution_prob))

    def crossover(self, a: SubnetConfig, b: SubnetConfig, rng: random.Random) -> SubnetConfig:
        """Each gene from `a` or `b` with probability 1/2."""
        def mix(x, y):
            return tuple(u if rng.random() < 0.5 else v for u, v in zip(x, y, strict=True))

        return SubnetConfig(mix(a.kernels, b.kernels), mix(a.expands, b.expands), mix(a.depths, b.depths),
                            a.resolution if rng.random() < 0.5 else b.resolution)

    @property
    def encoding_size(self) -> int:
        s = self.spec
        return s.num_blocks * (len(s.kernel_sizes) + len(s.expand_ratios)) + len(s.resolutions)

    def encode(self, cfg: SubnetConfig) -> torch.Tensor:
        """float32 [encoding_size]: per block one-hot kernel then one-hot expand (zeros for skipped blocks),
        then one-hot resolution; over the spec's full value sets."""
        s = self.spec
        nk, ne = len(s.kernel_sizes), len(s.expand_ratios)
        out = torch.zeros(self.encoding_size)
        for _, _, b in cfg.active_blocks(s):
            out[b * (nk + ne) + s.kernel_sizes.index(cfg.kernels[b])] = 1.0
            out[b * (nk + ne) + nk + s.expand_ratios.index(cfg.expands[b])] = 1.0
        out[s.num_blocks * (nk + ne) + s.resolutions.index(cfg.resolution)] = 1.0
        return out
