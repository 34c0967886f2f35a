"""Miniature datasets in the official on-disk formats, for the paper-scale configurations' end-to-end tests.

Each writer takes a folder and returns the overrides that point a run at what it wrote.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def cifar10_batches(root: Path, n: int = 8, seed: int = 1) -> list[str]:
    """<root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} as the pickled dicts of the original."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"batch_label": name, "labels": rng.integers(0, 10, n).tolist(),
                 "data": rng.integers(0, 256, (n, 3072)).astype(np.uint8), "filenames": [f"{i}.png" for i in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)], "num_cases_per_batch": n}, f, protocol=2)
    return [f"data.root={root}"]


def token_bins(root: Path, n_chars: int = 6000, seed: int = 0) -> list[str]:
    """nanoGPT train.bin/val.bin (uint16) + meta.json, written by `sparse_moe.prepare`'s byte tokenizer."""
    from sparse_moe.prepare import main as prepare

    rng = np.random.default_rng(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"]
    text = root / "corpus.txt"
    root.mkdir(parents=True, exist_ok=True)
    text.write_text(" ".join(words[i] for i in rng.integers(0, len(words), n_chars // 4)))
    prepare(["--input", str(text), "--out", str(root / "tok")])
    return [f"data.path={root / 'tok'}"]


def jpeg(path: Path, rng: np.random.Generator, side: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path, "JPEG", quality=90)


def imagenet_folders(root: Path, classes: int = 3, per_class: int = 8, side: int = 40, seed: int = 2) -> list[str]:
    """ImageNet's layout: <root>/{train,val,test}/<wnid>/<name>.JPEG, small JPEGs of random pixels."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val", "test"):
        for c in range(classes):
            for i in range(per_class if split == "train" else per_class // 2):
                jpeg(root / split / f"n{c:08d}" / f"{split}_{c}_{i}.JPEG", rng, side)
    return [f"data.root={root}"]


def arnet_frame_lists(root: Path, videos: int = 8, frames: int = 16, classes: int = 3, side: int = 32,
                      seed: int = 3, multilabel: bool = True) -> list[str]:
    """AR-Net's layout: <root>/frames/<video>/00001.jpg.. and list files `path,num_frames,label[,label]` per split
    (every third video also carries the last class, as ActivityNet's multi-label lines, when `multilabel`)."""
    rng = np.random.default_rng(seed)
    lines = {"train": [], "test": []}
    for split in lines:
        for v in range(videos):
            name = f"{split}_v{v}"
            for f in range(1, frames + 1):
                jpeg(root / "frames" / name / f"{f:05d}.jpg", rng, side)
            labels = [v % (classes - 1)] + ([classes - 1] if multilabel and v % 3 == 0 else [])
            lines[split].append(",".join([name, str(frames), *map(str, labels)]))
    for split, rows in lines.items():
        (root / f"{split}_list.txt").write_text("\n".join(rows) + "\n")
    return [f"data.root={root / 'frames'}", f"data.train_list={root / 'train_list.txt'}",
            f"data.test_list={root / 'test_list.txt'}", f"data.num_classes={classes}"]


def arnet_video_files(root: Path, videos: int = 8, frames: int = 16, classes: int = 3, side: int = 32,
                      seed: int = 4) -> list[str]:
    """Short encoded videos (MPEG-4 in .mp4, written with PyAV) under <root>/videos and single-label list files."""
    import av

    rng = np.random.default_rng(seed)
    lines = {"train": [], "test": []}
    for split in lines:
        for v in range(videos):
            name = f"{split}_v{v}.mp4"
            (root / "videos").mkdir(parents=True, exist_ok=True)
            with av.open(str(root / "videos" / name), "w") as out:
                stream = out.add_stream("mpeg4", rate=8)
                stream.width = stream.height = side
                stream.pix_fmt = "yuv420p"
                for _ in range(frames):
                    pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
                    out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
                out.mux(stream.encode())
            lines[split].append(f"{name},{frames},{v % classes}")
    for split, rows in lines.items():
        (root / f"{split}_list.txt").write_text("\n".join(rows) + "\n")
    return ["data.name=video_files", f"data.root={root / 'videos'}", f"data.train_list={root / 'train_list.txt'}",
            f"data.test_list={root / 'test_list.txt'}", f"data.num_classes={classes}"]
