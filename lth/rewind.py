"""Rewind points: where retraining restarts from (Frankle et al. 2020).

`0` is the original lottery ticket (rewind to initialisation); `500it` is iteration 500; `2ep` is epoch 2;
`1ep100it` is epoch 1 plus 100 iterations. Resolved to an iteration once the epoch length is known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PATTERN = re.compile(r"^(?:(\d+)ep)?(?:(\d+)it)?$")


@dataclass(frozen=True)
class RewindPoint:
    epochs: int = 0
    iterations: int = 0

    @classmethod
    def parse(cls, text: str | int) -> RewindPoint:
        s = str(text).strip()
        if s.isdigit():
            return cls(0, int(s))
        match = _PATTERN.match(s)
        if not s or match is None:
            raise ValueError(f"rewind={text!r} is not a rewind point; use an int, 'Nit', 'Nep' or 'NepMit'")
        return cls(int(match.group(1) or 0), int(match.group(2) or 0))

    def to_iteration(self, iterations_per_epoch: int) -> int:
        return self.epochs * iterations_per_epoch + self.iterations
