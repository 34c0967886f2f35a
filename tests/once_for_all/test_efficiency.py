import itertools
import json
import random
import time
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from meter import Measurement, Meter, MeterConfig
from once_for_all.efficiency import TIMERS, LatencyTable, energy_per_inference, measure_latency, table_error
from once_for_all.space import ArchSpace
from once_for_all.supernet import OFASupernet
from tests.once_for_all.ofa_testutils import SPEC_1D

SPACE = ArchSpace.full(SPEC_1D)


def synthetic_table() -> LatencyTable:
    keys = itertools.product(range(SPEC_1D.num_stages), range(SPEC_1D.max_depth), SPEC_1D.kernel_sizes,
                             SPEC_1D.expand_ratios, SPEC_1D.resolutions)
    return LatencyTable({k: 0.001 * (i + 1) for i, k in enumerate(keys)}, {12: 0.5, 16: 0.7},
                        SPEC_1D.max_depth)


def test_table_predict_is_fixed_plus_the_running_blocks_entries():
    table = synthetic_table()
    for seed in range(10):
        cfg = SPACE.sample(random.Random(seed))
        want = table.fixed[cfg.resolution] + sum(
            table.blocks[(s, i, cfg.kernels[b], cfg.expands[b], cfg.resolution)]
            for s, i, b in cfg.active_blocks(SPEC_1D))
        assert table.predict(cfg) == want
    back = LatencyTable.from_dict(json.loads(json.dumps(table.to_dict())))
    assert back == table and back.predict(SPACE.largest()) == table.predict(SPACE.largest())
    del table.blocks[(0, 0, 3, 3, 12)]
    with pytest.raises(KeyError, match=r"\(0, 0, 3, 3, 12\)"):
        table.predict(SPACE.smallest())


@pytest.mark.usefixtures("one_thread")
def test_built_table_has_every_choice_and_reports_its_error():
    net = OFASupernet(SPEC_1D)
    table = LatencyTable.build(net, warmup=0, repeats=1)
    n = SPEC_1D.num_blocks * len(SPEC_1D.kernel_sizes) * len(SPEC_1D.expand_ratios) * len(SPEC_1D.resolutions)
    assert len(table.blocks) == n and all(v > 0 for v in table.blocks.values())
    assert set(table.fixed) == set(SPEC_1D.resolutions) and table.num_threads == 1


def test_table_error_times_the_exported_subnet_with_the_tables_clock_and_batch(monkeypatch):
    """table_error against known numbers: a measured latency of 4 ms, and a synthetic table whose prediction for the
    smallest sub-net is computed here by hand (not by the row's own formula)."""
    import once_for_all.efficiency as efficiency

    table, calls = synthetic_table(), []
    table.batch_size, table.timer = 3, "thread_cpu"

    def fake_measure(model, x, warmup, repeats, timer):
        calls.append((tuple(x.shape), warmup, repeats, timer, sum(p.numel() for p in model.parameters())))
        return 0.004

    monkeypatch.setattr(efficiency, "measure_latency", fake_measure)
    net, cfg = OFASupernet(SPEC_1D), SPACE.smallest()
    (row,) = table_error(table, net, [cfg], warmup=2, repeats=7)
    keys = list(itertools.product(range(SPEC_1D.num_stages), range(SPEC_1D.max_depth), SPEC_1D.kernel_sizes,
                                  SPEC_1D.expand_ratios, SPEC_1D.resolutions))
    by_hand = {12: 0.5, 16: 0.7}[cfg.resolution] + sum(
        0.001 * (keys.index((s, i, cfg.kernels[s * SPEC_1D.max_depth + i], cfg.expands[s * SPEC_1D.max_depth + i],
                             cfg.resolution)) + 1)
        for s, depth in enumerate(cfg.depths) for i in range(depth))
    assert row["latency/predicted_s"] == pytest.approx(by_hand)
    assert row["latency/measured_s"] == 0.004
    assert row["latency/rel_error"] == pytest.approx((by_hand - 0.004) / 0.004)
    from once_for_all.export import export_subnet
    exported = sum(p.numel() for p in export_subnet(net, cfg).parameters())
    assert calls == [((3, SPEC_1D.in_channels, cfg.resolution), 2, 7, TIMERS["thread_cpu"], exported)]
    assert exported < sum(p.numel() for p in net.parameters())  # the static sub-net, not the supernet


def test_measure_latency_is_the_median_of_timed_repeats_after_warmup():
    calls = []
    model = nn.Linear(2, 2).train()
    model.register_forward_hook(lambda m, a, o: calls.append(m.training))
    ticks = iter([0.0, 1.0, 1.0, 4.0, 4.0, 6.0])  # durations 1, 3, 2
    assert measure_latency(model, torch.zeros(1, 2), warmup=2, repeats=3, timer=lambda: next(ticks)) == 2.0
    assert calls == [False] * 5 and model.training  # eval while timed, mode restored


class StubMeter:
    def __init__(self, method: str, joules: float) -> None:
        self.method, self.joules = method, joules

    @contextmanager
    def window(self, name):
        m = Measurement(name=name)
        yield m
        m.method, m.joules, m.seconds = self.method, self.joules, 1.0


@pytest.mark.parametrize("method, estimated", [
    ("measured:rapl", False), ("measured:rapl+estimated:cpu_time_linear", True),
    ("estimated:cpu_time_linear", True), ("disabled", True)])
def test_energy_per_inference_keeps_the_meters_label(method, estimated):
    row = energy_per_inference(nn.Linear(2, 2), torch.zeros(4, 2), StubMeter(method, 8.0), repeats=10)
    assert row["energy/method"] == method and row["energy/estimated"] is estimated
    assert row["energy/joules_per_inference"] == 0.8 and row["energy/joules_per_sample"] == 0.2


def test_energy_with_a_disabled_meter_is_never_called_measured():
    with Meter(MeterConfig(enabled=False)) as meter:
        row = energy_per_inference(nn.Linear(2, 2), torch.zeros(4, 2), meter, repeats=2)
    assert row["energy/method"] == "disabled" and row["energy/estimated"]


class Sleeper(nn.Module):
    def forward(self, x):
        time.sleep(0.02)
        return x


def test_thread_cpu_timer_leaves_out_waiting_and_wall_does_not():
    """What the thread_cpu timer is for: time the thread spends off the CPU (here a sleep, on a shared machine
    waiting for a core) is not latency it caused."""
    x = torch.zeros(1, 2)
    assert measure_latency(Sleeper(), x, warmup=0, repeats=3, timer=TIMERS["wall"]) >= 0.02
    assert measure_latency(Sleeper(), x, warmup=0, repeats=3, timer=TIMERS["thread_cpu"]) < 0.01


@pytest.mark.usefixtures("one_thread")
def test_table_remembers_its_timer_and_refuses_unknown_ones():
    table = LatencyTable.build(OFASupernet(SPEC_1D), warmup=0, repeats=1, timer="thread_cpu")
    assert table.timer == "thread_cpu" and LatencyTable.from_dict(table.to_dict()) == table
    legacy = {k: v for k, v in table.to_dict().items() if k != "timer"}  # tables written before the field
    assert LatencyTable.from_dict(legacy).timer == "wall"
    with pytest.raises(ValueError, match="timer='cpu'.*allowed: wall, thread_cpu"):
        LatencyTable.build(OFASupernet(SPEC_1D), warmup=0, repeats=1, timer="cpu")
