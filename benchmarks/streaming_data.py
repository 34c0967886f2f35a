"""Streaming loaders against the plain pipelines they replace, measured side by side in one process.

  python benchmarks/streaming_data.py [--images 1200] [--side 64] [--workers 2] [--repeats 3]

Prints (1) images/s of `experiments.streaming.LoaderBatches` over `lth.image_stream.ImageFiles` (torchvision's
decoder, imagenet preset) / images/s of a plain torchvision `ImageFolder` + `DataLoader` with the same transforms,
batch and workers (target >= 0.95); (2) windows/s of `experiments.token_data.TokenBatches` / nanoGPT's `get_batch`
(np.memmap re-opened per batch, random windows; target >= 0.95). Repeats alternate the arms; medians reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.streaming import LoaderBatches, LoaderCfg  # noqa: E402
from experiments.token_data import TokenBatches  # noqa: E402
from lth.image_stream import ImageFiles, ImageTransform, image_files  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def write_jpegs(root: Path, n: int, side: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"c{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(folder / f"{i}.jpg", quality=90)


def rate(batches) -> float:
    """Samples per second over one pass of `batches` (an iterable of (x, y))."""
    t0, n = time.perf_counter(), 0
    for x, _ in batches:
        n += len(x)
    return n / (time.perf_counter() - t0)


def image_arms(root: Path, crop: int, batch: int, workers: int):
    from torchvision import transforms as T
    from torchvision.datasets import ImageFolder

    plain_ds = ImageFolder(str(root), T.Compose([T.RandomResizedCrop(crop), T.RandomHorizontalFlip(), T.ToTensor(),
                                                T.Normalize(MEAN, STD)]))
    plain = torch.utils.data.DataLoader(plain_ds, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
                                        persistent_workers=workers > 0)
    paths, targets, _ = image_files(root)
    ours = LoaderBatches(ImageFiles(paths, targets, ImageTransform("imagenet", crop, mean=MEAN, std=STD)), batch,
                         seed=0, cfg=LoaderCfg(num_workers=workers))
    epoch = iter(range(10**6))
    return {"plain ImageFolder+DataLoader": lambda: rate(plain), "streaming LoaderBatches": lambda: rate(
        ours.epoch(next(epoch)))}


def token_arms(path: Path, n: int, block: int, batch: int, steps: int):
    def nanogpt():  # nanoGPT's train.py get_batch, verbatim in substance
        for _ in range(steps):
            data = np.memmap(path, dtype=np.uint16, mode="r")
            ix = torch.randint(len(data) - block, (batch,))
            x = torch.stack([torch.from_numpy(data[i : i + block].astype(np.int64)) for i in ix])
            y = torch.stack([torch.from_numpy(data[i + 1 : i + 1 + block].astype(np.int64)) for i in ix])
            yield x, y

    ours = TokenBatches(path, n, block, batch, seed=0, steps_per_epoch=steps)
    epoch = iter(range(10**6))
    return {"nanoGPT np.memmap get_batch": lambda: rate(nanogpt()), "TokenBatches": lambda: rate(
        ours.epoch(next(epoch)))}


def compare(arms: dict, repeats: int) -> tuple[dict, float]:
    """Median samples/s per arm (arms alternate in every repeat; a warm-up pass first) and ours / plain."""
    for f in arms.values():
        f()
    rates = {k: [] for k in arms}
    for _ in range(repeats):
        for k, f in arms.items():
            rates[k].append(f())
    med = {k: statistics.median(v) for k, v in rates.items()}
    plain, ours = list(med.values())
    return med, ours / plain


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1200)
    p.add_argument("--side", type=int, default=64)
    p.add_argument("--crop", type=int, default=56)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--tokens", type=int, default=5_000_000)
    p.add_argument("--block", type=int, default=256)
    p.add_argument("--token-steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        write_jpegs(root, a.images, a.side)
        med, ratio = compare(image_arms(root, a.crop, a.batch, a.workers), a.repeats)
        print(f"images ({a.images} JPEGs {a.side}px -> {a.crop}, batch {a.batch}, {a.workers} workers): "
              + ", ".join(f"{k} {v:.0f}/s" for k, v in med.items()) + f"; ratio {ratio:.3f} (target >= 0.95)")
        tok = Path(tmp) / "train.bin"
        np.random.default_rng(0).integers(0, 50257, a.tokens, dtype=np.uint16).tofile(tok)
        med, ratio = compare(token_arms(tok, a.tokens, a.block, a.batch, a.token_steps), a.repeats)
        print(f"token windows ({a.tokens} tokens, block {a.block}, batch {a.batch}): "
              + ", ".join(f"{k} {v:.0f}/s" for k, v in med.items()) + f"; ratio {ratio:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
