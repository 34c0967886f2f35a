"""Transparent huge pages for PyTorch's CPU allocations, switched on before torch is imported.

PyTorch reads `THP_MEM_ALLOC_ENABLE` once, at its first CPU allocation; with it, tensors of >= 2 MB are
2 MB-aligned and `madvise(MADV_HUGEPAGE)`d, so first touch faults 2 MB pages instead of 4 KB ones. A training
step allocates its weight gradients and large activations afresh (glibc serves them by mmap and returns them
on free), so without it every step pays the page faults again: measured on the 2-core dev VM, allocating and
touching 200 MB took 56 ms with 4 KB pages and 12-13 ms with huge pages, and an E = 64 MoE layer's
fwd+bwd (T=4096, d=256, f=1024, 200 MB of expert-weight gradients) went from 1.6x to 1.3x the dense FFN
(benchmarks/moe_dispatch.py). The kernel must allow it (`/sys/kernel/mm/transparent_hugepage/enabled` set to
`madvise` or `always`); otherwise the variable changes nothing. Opt out with `THP_MEM_ALLOC_ENABLE=0`.

Import this module before anything that imports torch (`experiments.run` does it first).
"""

from __future__ import annotations

import os
import sys

TORCH_ALREADY_LOADED = "torch" in sys.modules  # True means the setting below came too late to matter
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
