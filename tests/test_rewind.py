import pytest

from lth import RewindPoint


@pytest.mark.parametrize("text,epochs,its,resolved", [
    ("0", 0, 0, 0), (500, 0, 500, 500), ("500it", 0, 500, 500), ("2ep", 2, 0, 72), ("1ep100it", 1, 100, 136),
])
def test_parse_and_resolve(text, epochs, its, resolved):
    point = RewindPoint.parse(text)
    assert (point.epochs, point.iterations) == (epochs, its)
    assert point.to_iteration(36) == resolved


@pytest.mark.parametrize("bad", ["", "ep", "5 epochs", "-3", "2it3ep"])
def test_bad_rewind_rejected(bad):
    with pytest.raises(ValueError, match="rewind"):
        RewindPoint.parse(bad)
