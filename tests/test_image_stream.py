"""data=image_folder streaming (data.in_memory=false): the transforms' maths, the same run as in memory, workers,
unreadable files named (exit 4) or skipped and counted, and memory that does not grow with the dataset."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as F
from PIL import Image

from experiments.config import ConfigError, validate
from experiments.run import run_job
from lth.image_stream import ImageTransform, random_resized_crop_box
from tests.helpers import ROOT, compose, run_cli

CLASSES = ("a", "b", "c")
TINY = ["model=custom", "model._target_=tests.lth.custom_net.TinyNet", "+model.kwargs.hidden=5", "method.levels=0",
        "optim.batch_size=6", "optim.epochs=2", "meter=off", "progress=false"]


def write_jpegs(root, per_class=(("train", 8), ("test", 3)), side=8, fmt="png", seed=0):
    rng = np.random.default_rng(seed)
    for split, n in per_class:
        for cls in CLASSES:
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(
                    root / split / cls / f"{i}.{fmt}")


def test_random_resized_crop_box_stays_inside_and_in_range():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        top, left, h, w = random_resized_crop_box(40, 60, g)
        assert 0 <= top and top + h <= 40 and 0 <= left and left + w <= 60
        assert 0.08 * 2400 * 0.8 <= h * w <= 2400 and 3 / 4 * 0.8 <= w / h <= 4 / 3 * 1.2  # rounding slack
    # a 1x100 strip admits no crop of allowed aspect in 10 tries: the fallback is the central crop
    assert random_resized_crop_box(1, 100, g) == (0, 49, 1, 1)


def test_presets_exactly():
    img = torch.arange(3 * 10 * 12, dtype=torch.uint8).view(3, 10, 12)
    cifar = ImageTransform("cifar", size=10)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    top, left = int(torch.randint(0, 9, (), generator=g2)), int(torch.randint(0, 11, (), generator=g2))
    flip = float(torch.rand((), generator=g2)) < 0.5
    want = F.pad(img, [4])[:, top : top + 10, left : left + 10]
    want = (want.flip(-1) if flip else want).float() / 255
    assert torch.equal(cifar(img, g1), want)
    assert torch.equal(cifar(img, None), img.float() / 255)  # evaluation: the image as it is
    net = ImageTransform("imagenet", size=8, mean=(0.5,) * 3, std=(0.25,) * 3)
    ref = F.center_crop(F.resize(img, [9], antialias=True), [8, 8]).float() / 255  # 8 / 0.875 = 9.14 -> 9
    assert torch.equal(net(img, None), (ref - 0.5) / 0.25)
    assert net(img, torch.Generator().manual_seed(1)).shape == (3, 8, 8)
    with pytest.raises(ValueError, match="data.transform='bogus'"):
        ImageTransform("bogus")


def _rows(tmp_path, name, *extra):
    rows = run_job(compose([*TINY, "data=image_folder", f"data.root={tmp_path / 'data'}", *extra]), tmp_path / name)
    return rows[0]


def test_streaming_equals_in_memory_and_workers_do_not_matter(tmp_path):
    write_jpegs(tmp_path / "data")
    memory = _rows(tmp_path, "mem", "data.in_memory=true")
    stream = _rows(tmp_path, "s0", "data.in_memory=false")
    workers = _rows(tmp_path, "s2", "data.in_memory=false", "data.num_workers=2")
    small = _rows(tmp_path, "s4", "data.in_memory=false", "data.num_workers=2", "data.eval_batch_size=4")
    for key in ("loss/test", "acc/test", "acc/val", "flops/train_total", "flops/infer_per_sample"):
        assert memory[key] == stream[key] == workers[key], key
        assert small[key] == pytest.approx(memory[key], rel=1e-6), key  # other evaluation chunks: float sums only
    assert "data/skipped_bad" not in stream


def test_corrupt_image_is_an_input_error_naming_it_or_skipped_and_counted(tmp_path):
    write_jpegs(tmp_path / "data")
    bad = tmp_path / "data" / "train" / "b" / "3.png"
    bad.write_bytes(b"not an image at all")
    args = [*TINY, "data=image_folder", f"data.root={tmp_path / 'data'}", "data.in_memory=false",
            "data.num_workers=2"]
    failed = run_cli([*args, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert failed.returncode == 4, failed.stderr[-2000:]
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("input error:") and str(bad) in last and "data.skip_bad=true" in last
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"
    row = run_job(compose([*args, "data.skip_bad=true"]), tmp_path / "skip")[0]
    assert row["data/skipped_bad"] == 1


def test_empty_class_folder_is_an_input_error_naming_it(tmp_path):
    write_jpegs(tmp_path / "data")
    (tmp_path / "data" / "test" / "d").mkdir()
    (tmp_path / "data" / "train" / "d").mkdir()
    done = run_cli([*TINY, "data=image_folder", f"data.root={tmp_path / 'data'}", "data.in_memory=false",
                    f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert done.returncode == 4 and "input error:" in done.stderr and f"empty class folder {tmp_path / 'data' / 'train' / 'd'}:" in done.stderr.splitlines()[-1]


@pytest.mark.parametrize("overrides,key", [
    (["data.in_memory=maybe"], "data.in_memory"),
    (["data.transform=imagenet"], "data.crop_size"),
    (["data.transform=cifar", "data.crop_size=8", "data.in_memory=true"], "data.in_memory"),
    (["data.num_workers=-1"], "data.num_workers"),
])
def test_bad_streaming_config_names_the_key(tmp_path, overrides, key):
    write_jpegs(tmp_path / "data", per_class=(("train", 1), ("test", 1)))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose(["data=image_folder", f"data.root={tmp_path / 'data'}", *overrides]))


def _peak_rss_mb(tmp_path, n, name):
    root = tmp_path / name
    per = n // len(CLASSES)
    write_jpegs(root, per_class=(("train", per), ("test", 2)), side=64, fmt="jpg")
    args = ["model=torchvision", "model.name=resnet18", "data=image_folder", f"data.root={root}",
            "data.in_memory=false", "data.num_workers=2", "data.transform=cifar", "data.crop_size=64",
            "method.levels=0", "optim.batch_size=16", "optim.epochs=null", "optim.steps=3", "optim.eval_every=3", "meter=off",
            "progress=false", f"hydra.run.dir={tmp_path / (name + '_run')}"]
    code = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
            "sys.stderr.write(p.stderr[-2000:])")
    out = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "experiments.run", *args], cwd=tmp_path,
                         capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled",
                                                              "PATH": "/usr/bin:/bin"})
    rc, kb = out.stdout.split()
    assert rc == "0", out.stderr
    return int(kb) / 1024


@pytest.mark.slow
def test_memory_does_not_grow_with_the_dataset(tmp_path):
    small, large = _peak_rss_mb(tmp_path, 2_000, "small"), _peak_rss_mb(tmp_path, 20_000, "large")
    print(f"peak RSS: {small:.0f} MB at 2,000 images, {large:.0f} MB at 20,000")
    assert abs(large - small) < 100
