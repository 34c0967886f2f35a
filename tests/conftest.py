import pytest

from tests.helpers import FAST, compose


@pytest.fixture
def tiny_cfg():
    return compose(FAST)
