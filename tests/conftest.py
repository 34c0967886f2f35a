import pytest
import torch

from tests.helpers import FAST, compose


@pytest.fixture
def tiny_cfg():
    return compose(FAST)


@pytest.fixture
def one_thread():
    """Tiny tensors: one intra-op thread avoids oversubscribing the shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
