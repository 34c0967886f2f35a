"""The meter in any script: `with Meter(...) as m`, `m.window(name, flops=True)`, `m.result()`, `@metered`, and
the README's example run as written in a fresh interpreter that imports nothing else of ours."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from meter import Meter, MeterConfig, MeterResult, metered

ROOT = Path(__file__).resolve().parents[2]
OURS = ("experiments", "lth", "sparse_moe", "adaptive_frames", "once_for_all")
LINEAR_FLOPS = 2 * 64 * 256 * 256  # one (64 x 256) @ (256 x 256) matmul, 2 FLOPs per multiply-add


def _work(model, x, steps=3):
    for _ in range(steps):
        model(x).sum().backward()


def test_keywords_are_config_fields():
    assert Meter(region="FRA", pue=1.2).cfg == MeterConfig(region="FRA", pue=1.2)
    assert Meter(MeterConfig(region="FRA"), pue=1.5).cfg.region == "FRA"
    with pytest.raises(TypeError):
        Meter(regoin="FRA")


def test_result_windows_and_counted_flops():
    model, x = torch.nn.Linear(256, 256), torch.randn(64, 256)
    with Meter(sources=["estimate"], intensity_g_per_kwh=100.0) as m:
        for _ in range(2):
            with m.window("train"):
                _work(model, x)
        with m.window("infer", flops=True) as w:
            model(x)
            with m.window("inner", flops=True) as inner:  # nested: inside the outer count, not added again
                model(x)
    r = m.result()
    assert isinstance(r, MeterResult)
    assert inner.flops == LINEAR_FLOPS and w.flops == 2 * LINEAR_FLOPS and r.flops == 2 * LINEAR_FLOPS
    assert r.windows["train"].flops is None and r.windows["train"].seconds > 0
    assert r.windows["infer"].flops == 2 * LINEAR_FLOPS
    assert r.joules > 0 and r.method.startswith("estimated:") and r.intensity_source == "user"
    assert r.g_co2e == pytest.approx(r.kwh * 100.0, rel=1e-9)
    assert r.wall_s >= r.windows["train"].seconds + r.windows["infer"].seconds
    assert r.row()["flops/counted"] == 2 * LINEAR_FLOPS


def test_metered_decorator():
    @metered(name="fit", flops=True, sources=["estimate"], region="SWE")
    def fit(model, x):
        _work(model, x, steps=1)
        return "done"

    assert fit.result is None
    assert fit(torch.nn.Linear(256, 256), torch.randn(64, 256)) == "done"
    r = fit.result
    assert r.joules > 0 and r.intensity_source.startswith("table:SWE") and list(r.windows) == ["fit"]
    # forward: one matmul; backward: the weight's gradient, one more (x needs none; bias sums are not counted)
    assert r.flops == 2 * LINEAR_FLOPS
    with pytest.raises(ValueError, match="meter.pue"):
        metered(pue=9.0)


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Energy and carbon"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs_alone():
    check = f"\nimport sys\nprint('OURS', [m for m in {OURS!r} if m in sys.modules])\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _readme_example() + check], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "OURS []" in proc.stdout  # nothing of ours but meter was imported
    energy = re.search(r"energy: (\S+) J \(\S+ kWh\), method (\S+)", proc.stdout)
    assert energy and float(energy.group(1)) > 0
    assert re.fullmatch(r"((measured|estimated):\w+\+?)+", energy.group(2))
    assert f"FLOPs: {LINEAR_FLOPS:.4g}" in proc.stdout and "g CO2e" in proc.stdout and "table:FRA" in proc.stdout
