"""Helpers shared by the test modules (import as ``from tests.helpers import ...``)."""

import os
import subprocess
import sys
from pathlib import Path

from meter.sources import SOURCES
from meter.sources.base import EnergySource

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# Never reach W&B servers from tests, and keep bars quiet.
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("CI", "1")

FAST = ["debug=fast", "progress=false"]


def compose(overrides: list[str]):
    """Compose the primary config in-process, as the CLI would (without running Hydra's main), debug caps applied."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import experiments.run  # noqa: F401  registers the schemas
    from experiments import debug

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return debug.apply(hydra_compose(config_name="config", overrides=overrides, return_hydra_config=False),
                           overrides)


def run_cli(args: list[str], cwd: Path, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "CI": "1"}
    env.update(kwargs.pop("env", {}))
    return subprocess.run([sys.executable, "-m", "experiments.run", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, **kwargs)



class HandCounter(EnergySource):
    """A CPU energy counter a test advances by hand (`HandCounter.joules += j`): every window's joules are exact."""

    name = "counter"
    joules = 0.0

    def keys(self):
        return ["cpu/measured:rapl"]

    def read(self):
        return {"cpu/measured:rapl": HandCounter.joules}


def install_hand_counter(monkeypatch) -> None:
    """Register HandCounter as the meter source "counter" for this test, starting at 0 J."""
    monkeypatch.setitem(SOURCES._items, "counter", lambda cfg, want: HandCounter())
    HandCounter.joules = 0.0
