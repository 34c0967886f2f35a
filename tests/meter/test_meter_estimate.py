import pytest

from meter.sources.estimate import CPU_KEY, RAM_KEY, EstimateSource, process_cpu_seconds, rss_bytes


class Box:
    def __init__(self, v):
        self.v = v

    def __call__(self):
        return self.v


def test_cpu_model_is_exact_linear_in_own_cpu_time():
    cpu, clock = Box(10.0), Box(100.0)
    src = EstimateSource({"cpu"}, w_idle=0.74, w_max=3.5, cores=2, ram_w_per_gb=0.392, sample_period_s=0.1,
                         cpu_seconds=cpu, rss=Box(0), clock=clock)
    cpu.v, clock.v = 13.0, 104.0  # 3 busy core-seconds in 4 s on 2 cores
    expect = 3.0 * (3.5 - 0.74) + 4.0 * 2 * 0.74
    assert src.read() == {CPU_KEY: pytest.approx(expect)}
    assert src.keys() == [CPU_KEY]


def test_ram_integrates_rss_trapezoid():
    rss, clock = Box(2e9), Box(0.0)
    src = EstimateSource({"dram"}, 0.74, 3.5, 2, ram_w_per_gb=0.5, sample_period_s=0.1, cpu_seconds=Box(0.0),
                         rss=rss, clock=clock)  # 1 W at t=0
    rss.v, clock.v = 6e9, 2.0  # 3 W at t=2
    src.poll()
    assert src.read() == {RAM_KEY: pytest.approx(4.0)}  # (1 + 3)/2 * 2
    clock.v = 3.0
    assert src.read()[RAM_KEY] == pytest.approx(7.0)  # extrapolated at 3 W


def test_real_readers_are_sane():
    a = process_cpu_seconds()
    sum(i * i for i in range(200_000))
    assert process_cpu_seconds() > a
    assert rss_bytes() > 10_000_000  # a Python process with torch imported holds more than 10 MB
