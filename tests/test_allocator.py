"""The CLI switches on PyTorch's huge-page allocation before torch loads, and respects a user's opt-out."""

import os
import subprocess
import sys

from tests.helpers import ROOT

PROBE = (
    "import os, experiments.run, experiments.allocator as a; "
    "print(a.TORCH_ALREADY_LOADED, os.environ['THP_MEM_ALLOC_ENABLE'])"
)


def _probe(**env_extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    env.update(PYTHONPATH=str(ROOT), **env_extra)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_set_before_torch_is_imported():
    # "False" = torch was not yet loaded when the variable was set, so PyTorch's allocator will read it.
    assert _probe() == "False 1"


def test_user_opt_out_is_kept():
    assert _probe(THP_MEM_ALLOC_ENABLE="0") == "False 0"
