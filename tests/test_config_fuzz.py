"""Config fuzzing: any single override of any key of any experiment either composes into a valid config or is
rejected with a message naming that key, before any work starts."""

import pytest
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from experiments.config import ConfigError, validate
from experiments.errors import InputError
from tests.helpers import CONF, compose

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
_NOT_FUZZED = ("paths.", "logger.", "debug")  # debug: a config group (debug=fast), null in a real run


def _leaf_keys(node, prefix=""):
    for key in node:
        value = node[key] if not isinstance(node, ListConfig) else None
        full = f"{prefix}{key}"
        if isinstance(value, DictConfig):
            yield from _leaf_keys(value, full + ".")
        elif not full.startswith(_NOT_FUZZED):
            yield full


KEYS = {name: sorted(_leaf_keys(compose([f"experiment={name}"]))) for name in EXPERIMENTS}
VALUES = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: f"{f:.6g}"),
    st.sampled_from(["true", "false", "null", "abc", "[1,2]", "[]", "0", "-1", "1.5", "1e-9", "[a,b]"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_bad_override_is_rejected_naming_its_key(data):
    experiment = data.draw(st.sampled_from(EXPERIMENTS))
    key = data.draw(st.sampled_from(KEYS[experiment]))
    value = data.draw(VALUES)
    try:
        typed = validate(compose([f"experiment={experiment}", f"{key}={value}"]))
    except (ConfigError, InputError, HydraException, OmegaConfBaseException) as e:  # InputError: a missing file
        leaf = key.rsplit(".", 1)[-1]
        assert leaf in str(e), (key, value, str(e))
    else:
        assert OmegaConf.structured(typed) is not None  # a value that passes builds every typed section
