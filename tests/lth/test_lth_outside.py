"""Outside models and data through the Hydra entry points: `model=torchvision`, `model=custom`,
`data=image_folder`, on tiny PNG folders each test writes itself."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from experiments.config import ConfigError, validate
from experiments.run import run_job
from lth.data import load_dataset
from tests.helpers import compose, run_cli

CLASSES = ("cat", "dog", "emu")


def write_folders(root, splits=(("train", 6), ("test", 3)), side=8, seed=0):
    """<root>/<split>/<class>/<i>.png, RGB side x side; returns {split: (pixels uint8 [N, H, W, 3], labels)}."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in splits:
        pixels, labels = [], []
        for label, cls in enumerate(CLASSES):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
                Image.fromarray(img).save(root / split / cls / f"{i}.png")
                pixels.append(img)
                labels.append(label)
        out[split] = (np.stack(pixels), labels)
    return out


def test_image_folder_loads_pixels_labels_and_transforms(tmp_path):
    truth = write_folders(tmp_path, (("train", 4), ("val", 2), ("test", 2)))
    d = load_dataset("image_folder", root=str(tmp_path), mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    assert d.num_classes == 3 and d.x_test.shape == (6, 3, 8, 8) and len(d.x_val) == 6
    expected = (torch.from_numpy(truth["test"][0]).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    assert torch.allclose(d.x_test, expected, atol=1e-6)
    assert d.y_test.tolist() == truth["test"][1]  # classes indexed by sorted folder name
    small = load_dataset("image_folder", root=str(tmp_path), resize=[4, 4], grayscale=True)
    assert small.x_train.shape == (12, 1, 4, 4) and float(small.x_train.max()) <= 1.0


def test_image_folder_without_val_carves_it_and_checks_classes(tmp_path):
    write_folders(tmp_path)
    d = load_dataset("image_folder", root=str(tmp_path), val_fraction=1 / 3)
    assert (len(d.x_train), len(d.x_val)) == (12, 6)
    (tmp_path / "test" / "fox").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "test" / "fox" / "0.png")
    with pytest.raises(ValueError, match="splits must match"):
        load_dataset("image_folder", root=str(tmp_path))


def test_custom_model_on_image_folder_runs_imp_with_baselines(tmp_path):
    write_folders(tmp_path / "data")
    cfg = compose(["progress=false", "data=image_folder", f"data.root={tmp_path / 'data'}", "model=custom",
                   "model._target_=tests.lth.custom_net.TinyNet", "+model.kwargs.hidden=5", "method.levels=1",
                   "optim.batch_size=4", "optim.epochs=2", "meter=off"])
    rows = run_job(cfg, tmp_path / "run")
    assert [(r["lth/level"], r["lth/kind"]) for r in rows] == [
        (0, "ticket"), (1, "ticket"), (1, "random_reinit"), (1, "random_prune")]
    # TinyNet(192 -> 5 -> 3): weights 960 + 15, biases 5 + 3; level 1 keeps 80% of each layer's weights
    assert all(r["params/total"] == 983 for r in rows)
    kept = 960 - round(0.2 * 960) + 15 - round(0.2 * 15)
    assert all(r["params/nonzero"] == kept + 8 for r in rows[1:])
    assert all(r["flops/infer_per_sample_dense"] == 2 * (192 * 5 + 5 * 3) for r in rows)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and len(summary["records"]) == 4


@pytest.mark.slow
def test_cli_torchvision_resnet18_on_image_folder(tmp_path):
    write_folders(tmp_path / "data")
    done = run_cli(["model=torchvision", "model.name=resnet18", "data=image_folder", f"data.root={tmp_path / 'data'}",
                    # 64 px: at 8 px resnet18 reaches 1x1 maps, and the trainer counts FLOPs on one sample in
                    # train mode, where BatchNorm refuses a single value per channel (reported, not ours to fix)
                    "data.resize=[64,64]", "method.levels=1", "optim.batch_size=4", "optim.epochs=1",
                    f"hydra.run.dir={tmp_path / 'run'}"],
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "run" / "summary.json").read_text())["records"]
    assert [(r["lth/level"], r["lth/kind"]) for r in rows] == [
        (0, "ticket"), (1, "ticket"), (1, "random_reinit"), (1, "random_prune")]
    assert rows[0]["params/total"] == 11_178_051  # torchvision resnet18 with a 3-class head
    assert rows[1]["lth/percent_remaining"] == pytest.approx(80.0, abs=0.01)


def test_image_folder_without_a_root_is_an_input_error_naming_the_key():
    from experiments.errors import InputError
    from experiments.inputs import check_inputs

    typed = validate(compose(["progress=false", "data=image_folder"]))  # an input, not a config value (exit 4)
    with pytest.raises(InputError, match=r"data\.root=None"):
        check_inputs(typed)


@pytest.mark.parametrize("overrides,key", [
    (["model=torchvision", "model.name=not_a_net"], "model.name"),
    (["model=custom", "model._target_=tests.lth.custom_net.Missing"], "model._target_"),
])
def test_bad_outside_config_names_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose(["progress=false", *overrides]))
