import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every lth test runs on one intra-op thread (tests/conftest.py)."""
    yield
