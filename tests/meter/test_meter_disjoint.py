"""`Meter.window(name, disjoint=True)`: a window carved out of every window enclosing it, so `train` and `eval`
partition the energy instead of the training window holding every periodic evaluation."""

import pytest

from meter import Meter, MeterConfig
from tests.helpers import HandCounter, install_hand_counter


@pytest.fixture
def meter(monkeypatch):
    install_hand_counter(monkeypatch)
    return Meter(MeterConfig(sources=["counter"], intensity_g_per_kwh=360.0, sample_period_s=60))


def test_an_eval_inside_train_is_billed_to_eval_only(meter):
    with meter:
        with meter.window("train") as train:
            HandCounter.joules += 10.0  # training
            for _ in range(2):
                with meter.window("eval", disjoint=True) as ev:
                    HandCounter.joules += 3.0  # each evaluation
                HandCounter.joules += 5.0  # training again
    r = meter.result()
    assert ev.joules == 3.0 and r.windows["eval"].joules == 6.0
    assert train.joules == r.windows["train"].joules == 20.0  # 10 + 5 + 5: no evaluation energy
    assert train.g_co2e == pytest.approx(20.0 / 3.6e6 * 360.0) and train.intensity_g_per_kwh == pytest.approx(360.0)
    assert train.joules + r.windows["eval"].joules == r.joules == 26.0  # the unit total is their sum
    assert train.seconds + r.windows["eval"].seconds <= r.wall_s


def test_nested_disjoint_windows_are_carved_once(meter):
    with meter:
        with meter.window("outer") as outer:
            HandCounter.joules += 1.0
            with meter.window("mid", disjoint=True) as mid:
                HandCounter.joules += 2.0
                with meter.window("inner", disjoint=True) as inner:
                    HandCounter.joules += 4.0
                with meter.window("plain"):  # an ordinary nested window stays inside its parent
                    HandCounter.joules += 8.0
    assert (outer.joules, mid.joules, inner.joules) == (1.0, 10.0, 4.0)


def test_a_plain_nested_window_is_still_counted_in_its_parent(meter):
    with meter:
        with meter.window("train") as train:
            with meter.window("step"):
                HandCounter.joules += 7.0
    assert train.joules == 7.0


def test_disjoint_inside_a_flop_counted_window_is_refused(meter):
    with meter, meter.window("outer", flops=True):
        with pytest.raises(ValueError, match="disjoint=True.*FLOP-counted"):
            with meter.window("eval", disjoint=True):
                pass
