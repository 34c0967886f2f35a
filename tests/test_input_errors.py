"""Missing or unusable inputs are input errors (exit 4) naming the input, for every data kind; an output folder
that cannot be created is a run-folder error (exit 5), not a traceback."""

from __future__ import annotations

import pytest

from experiments.config import validate
from experiments.errors import INPUT, RUN_FOLDER, kind_of
from experiments.inputs import check_inputs
from lth.data import load_dataset
from lth.image_folder import CorruptImageError
from tests.helpers import CONF, FAST, compose, run_cli
from tests.lth.test_lth_outside import write_folders

# every data kind whose config has a `root`, with the other keys it needs to compose
ROOTED = {name: extra for name, extra in {
    "mnist": [], "fashion_mnist": [], "cifar10": [], "image_folder": [],
    "video_list": ["data.train_list=x.txt", "data.test_list=x.txt", "data.num_classes=2", "experiment=af_needle"],
}.items()}


def test_every_data_kind_with_a_root_is_listed():
    rooted = {p.stem for p in (CONF / "data").glob("*.yaml") if "root" in p.read_text()}
    assert rooted == set(ROOTED)


@pytest.mark.parametrize("kind", sorted(ROOTED))
def test_a_missing_data_root_is_an_input_error(tmp_path, kind):
    missing = tmp_path / "nope"
    typed = validate(compose([*ROOTED[kind], f"data={kind}", f"data.root={missing}", *FAST]))  # no ConfigError
    with pytest.raises(Exception) as e:
        check_inputs(typed)
    assert kind_of(e.value) == INPUT and str(missing) in str(e.value)


def _corrupt_one(root):
    write_folders(root)
    bad = root / "train" / "dog" / "1.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return bad


def test_a_corrupt_image_is_an_input_error_naming_it(tmp_path):
    bad = _corrupt_one(tmp_path)
    with pytest.raises(CorruptImageError) as e:
        load_dataset("image_folder", root=str(tmp_path))
    assert e.value.path == str(bad) and str(bad) in str(e.value)
    assert kind_of(e.value) == INPUT


def test_cli_corrupt_image_exits_4_and_unwritable_output_exits_5(tmp_path):
    bad = _corrupt_one(tmp_path / "data")
    args = [*FAST, "data=image_folder", f"data.root={tmp_path / 'data'}", "meter=off"]
    proc = run_cli([*args, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, timeout=240)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == INPUT.exit_code and last.startswith("input error: ") and str(bad) in last, proc.stderr

    proc = run_cli([*FAST, "hydra.run.dir=/proc/leanlab/x"], cwd=tmp_path, timeout=240)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == RUN_FOLDER.exit_code, proc.stderr
    assert last.startswith("run folder error: cannot create the output folder /proc/leanlab") and "Traceback" not in \
        proc.stderr, proc.stderr
