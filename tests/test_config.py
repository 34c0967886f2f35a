import subprocess
import sys

import pytest

from experiments.config import ConfigError, config_hash, validate
from tests.helpers import CONF, ROOT, compose

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_validates(name):
    cfg = compose([f"experiment={name}"])
    typed = validate(cfg)
    assert typed.name == name


@pytest.mark.parametrize("override,key", [
    ("method.prune_fraction=1.5", "method.prune_fraction"), ("method.rewind=soon", "rewind"),
    ("optim.batch_size=0", "optim.batch_size"), ("model.init=zeros", "model.init"),
    ("method.strategy=smallest", "method.strategy"), ("optim.steps=100", "optim.epochs/optim.steps"),
])
def test_out_of_range_values_are_rejected_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose([override]))


def test_hash_ignores_defaults_seed_and_logging_but_not_hyperparameters():
    base = config_hash(compose([]))
    assert config_hash(compose(["method.prune_fraction=0.2"])) == base  # explicit default
    assert config_hash(compose(["seed=5", "logger=wandb", "progress=false"])) == base
    assert config_hash(compose(["optim.lr=0.01"])) != base
    assert config_hash(compose(["method.rewind=2ep"])) != base


def test_hash_is_stable_across_processes():
    code = ("from tests.helpers import compose; "
            "from experiments.config import config_hash; print(config_hash(compose(['optim.lr=0.01'])))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": "", "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == config_hash(compose(["optim.lr=0.01"]))
