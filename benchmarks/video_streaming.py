"""Streaming video clips (data=video_list, data.in_memory=false) against a plain PyAV loop, side by side in one run.

  python benchmarks/video_streaming.py [--videos 48] [--frames 48] [--side 128] [--size 112] [--segments 8]
                                       [--batch 8] [--workers 2] [--repeats 3]

Writes `--videos` short mpeg4 files with PyAV, then prints clips/s of `experiments.streaming.LoaderBatches` over
`adaptive_frames.data.video.VideoFileDataset` (TSN offsets from (seed, epoch, index)) / clips/s of a plain
`DataLoader` over a dataset that opens each file with `av`, decodes up to its last sampled frame, keeps one random
frame per segment and resizes (same batch, workers, decoder and output; target >= 0.9). Repeats alternate the
arms after a warm-up pass; medians reported.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adaptive_frames.data.video import VideoFileDataset  # noqa: E402
from benchmarks.streaming_data import compare, rate  # noqa: E402
from experiments.streaming import LoaderBatches, LoaderCfg  # noqa: E402


def write_videos(root: Path, n: int, frames: int, side: int) -> Path:
    """n mpeg4 files of `frames` noisy frames side x side, and their AR-Net list file (path,num_frames,label)."""
    rng = np.random.default_rng(0)
    lines = []
    for v in range(n):
        with av.open(str(root / f"v{v}.mp4"), "w") as out:
            stream = out.add_stream("mpeg4", rate=25)
            stream.width = stream.height = side
            stream.pix_fmt = "yuv420p"
            for _ in range(frames):
                pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
                out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
            out.mux(stream.encode())
        lines.append(f"v{v}.mp4,{frames},{v % 10}")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return root / "list.txt"


class PlainPyAV(torch.utils.data.Dataset):
    """What one writes without the toolkit: open, decode to the last sampled frame, one frame per segment, resize."""

    def __init__(self, root: Path, list_file: Path, segments: int, size: int) -> None:
        rows = [line.split(",") for line in list_file.read_text().split()]
        self.items = [(root / p, int(n), int(y)) for p, n, y in rows]
        self.segments, self.size = segments, size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, n, label = self.items[i]
        edges = np.linspace(0, n, self.segments + 1).astype(int)
        want = [int(np.random.randint(a, max(a + 1, b))) for a, b in zip(edges[:-1], edges[1:])]
        kept = {}
        with av.open(str(path)) as container:
            for j, frame in enumerate(container.decode(video=0)):
                if j in want:
                    kept[j] = frame.to_ndarray(format="rgb24")
                if j >= want[-1]:
                    break
        x = torch.from_numpy(np.stack([kept[j] for j in want])).permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return x, label


def arms(root: Path, list_file: Path, a) -> dict:
    plain = torch.utils.data.DataLoader(PlainPyAV(root, list_file, a.segments, a.size), batch_size=a.batch,
                                        shuffle=True, drop_last=True, num_workers=a.workers,
                                        persistent_workers=a.workers > 0)
    ours = LoaderBatches(VideoFileDataset(root, list_file, num_segments=a.segments, train=True, size=a.size),
                         a.batch, seed=0, cfg=LoaderCfg(num_workers=a.workers))
    epoch = iter(range(10**6))
    return {"plain PyAV DataLoader": lambda: rate(plain),
            "streaming LoaderBatches": lambda: rate(ours.epoch(next(epoch)))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=48)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--side", type=int, default=128)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--segments", type=int, default=8)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        list_file = write_videos(Path(tmp), a.videos, a.frames, a.side)
        med, ratio = compare(arms(Path(tmp), list_file, a), a.repeats)
        print(f"video clips ({a.videos} mpeg4 files, {a.frames} frames {a.side}px -> {a.segments} segments at "
              f"{a.size}px, batch {a.batch}, {a.workers} workers): "
              + ", ".join(f"{k} {v:.1f}/s" for k, v in med.items()) + f"; ratio {ratio:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
