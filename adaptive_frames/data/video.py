"""Plain video files decoded with PyAV, TSN segment sampling, same list format and items as frame folders.

List file lines `path,num_frames,label[,label...]`; num_frames may be 0 (unknown): the video is decoded to count.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from .frames import make_label, parse_list_file, to_clip
from .sampling import tsn_indices


def decode_frames(path: str | Path, keep: set[int] | None = None) -> tuple[list[np.ndarray], int]:
    """RGB frames [H, W, 3] uint8 of the first video stream (only those in `keep`, if given) and the frame count.

    The RGB conversion uses swscale's threads only inside a DataLoader worker: its thread pool, once used in a
    process, makes the workers later forked from that process hang (PyAV 18)."""
    threads = 0 if get_worker_info() is not None else 1  # 0 = FFmpeg's choice
    frames, n = [], 0
    with av.open(str(path)) as container:
        for n, frame in enumerate(container.decode(video=0), 1):
            if keep is None or (n - 1) in keep:
                frames.append(frame.to_ndarray(format="rgb24", threads=threads))
            if keep is not None and keep and n - 1 >= max(keep):
                break
    return frames, n


class VideoFileDataset(Dataset):
    def __init__(
        self, root: str | Path, list_file: str | Path, num_segments: int, train: bool, size: int | None = None,
        num_classes: int | None = None, seed: int = 0,
    ) -> None:
        self.root, self.entries = Path(root), parse_list_file(list_file)
        self.num_segments, self.train, self.size, self.num_classes = num_segments, train, size, num_classes
        self.generator = torch.Generator().manual_seed(seed)
        self._counts: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def num_frames(self, i: int) -> int:
        e = self.entries[i]
        if e.num_frames > 0:
            return e.num_frames
        if i not in self._counts:
            self._counts[i] = decode_frames(self.root / e.path, keep=set())[1]
        return self._counts[i]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(clip, label, i), sampled as `train` says from the dataset's own generator (in-memory use)."""
        return self._clip(i, self.train, self.generator), make_label(self.entries[i].labels, self.num_classes), i

    def load(self, i: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Streaming sample: (clip [T, 3, size, size], label); TSN random offsets drawn from `generator`, or the
        segment centres when it is None (evaluation). OSError names a missing or undecodable file."""
        return self._clip(i, generator is not None, generator), make_label(self.entries[i].labels, self.num_classes)

    def _clip(self, i: int, train: bool, generator: torch.Generator | None) -> torch.Tensor:
        e = self.entries[i]
        path = self.root / e.path
        if not path.is_file():
            raise FileNotFoundError(f"video file {str(path)!r} (list entry {i}) does not exist")
        try:
            n = self.num_frames(i)
            if n < 1:
                raise OSError("no decodable frames")
            idx = [int(j) for j in tsn_indices(n, self.num_segments, train, generator)]
            decoded, _ = decode_frames(path, keep=set(idx))
        except (av.error.FFmpegError, OSError) as err:  # PyAV: InvalidDataError etc.
            raise OSError(f"undecodable video file {str(path)!r} (list entry {i}): {err}") from None
        by_index = dict(zip(sorted(set(idx)), decoded))
        if len(by_index) != len(set(idx)):
            raise OSError(f"video file {str(path)!r}: the list says {n} frames but fewer could be decoded")
        frames = torch.from_numpy(np.stack([by_index[j] for j in idx])).permute(0, 3, 1, 2)
        return to_clip(frames, self.size)
