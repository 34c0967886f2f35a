import os

import pytest
import torch

from tests.helpers import compose

try:  # CI draws the same examples every run (a landing must not hinge on a random draw); elsewhere each run explores
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, database=None)
    if os.environ.get("CI"):
        settings.load_profile("ci")
except ImportError:  # hypothesis is a dev extra; the tests that use it skip without it
    pass


@pytest.fixture
def tiny_cfg():
    """The main job at 600 samples, 2 epochs, 2 levels: enough steps for rewinding points such as 4it (debug=fast
    caps a unit at 4 steps)."""
    return compose(["progress=false", "data.num_samples=600", "optim.epochs=2", "method.levels=2"])


@pytest.fixture
def one_thread():
    """Tiny tensors: one intra-op thread avoids oversubscribing the shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
