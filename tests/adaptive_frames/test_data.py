import av
import numpy as np
import pytest
import torch
from PIL import Image

from adaptive_frames.data.frames import FrameFolderDataset, parse_list_file
from adaptive_frames.data.loader import ClipLoader
from adaptive_frames.data.needle import NeedleConfig, make_needle_splits
from adaptive_frames.data.sampling import tsn_indices
from adaptive_frames.data.video import VideoFileDataset

SMALL = NeedleConfig(num_frames=6, informative=2, size=16, envelope_sigma=2.0, marker_sigma=3.0, num_train=10,
                     num_test=4, seed=3)


def test_needle_is_seeded_and_has_the_promised_structure():
    a_train, a_test = make_needle_splits(SMALL)
    b_train, _ = make_needle_splits(SMALL)
    assert torch.equal(a_train.clips, b_train.clips) and torch.equal(a_train.labels, b_train.labels)
    assert a_train.clips.shape == (10, 6, 1, 16, 16) and a_test.clips.shape == (4, 6, 1, 16, 16)
    assert a_train.informative.sum(dim=1).tolist() == [2] * 10
    c_train, _ = make_needle_splits(NeedleConfig(**{**SMALL.__dict__, "seed": 4}))
    assert not torch.equal(a_train.clips, c_train.clips)


def test_needle_marker_sits_on_informative_frames_only():
    cfg = NeedleConfig(**{**SMALL.__dict__, "noise": 0.0, "amplitude": 0.0, "marker_contrast": 1.0})
    train, _ = make_needle_splits(cfg)
    energy = train.clips.abs().sum(dim=(2, 3, 4))  # [N, T]
    assert torch.equal(energy > 0, train.informative)


@pytest.mark.parametrize("kw", [{"informative": 0}, {"informative": 7}, {"period": 2.0}, {"decoy_prob": 1.5}])
def test_needle_rejects_bad_config(kw):
    with pytest.raises(ValueError, match="NeedleConfig"):
        NeedleConfig(**{**SMALL.__dict__, **kw})


def test_tsn_indices_exact():
    assert tsn_indices(16, 4, train=False).tolist() == [2, 6, 10, 14]
    assert tsn_indices(10, 3, train=False).tolist() == [1, 5, 8]
    assert tsn_indices(2, 4, train=False).tolist() == [0, 0, 1, 1]
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        idx = tsn_indices(10, 3, train=True, generator=g)
        assert 0 <= idx[0] <= 2 and 3 <= idx[1] <= 5 and 6 <= idx[2] <= 9
    with pytest.raises(ValueError, match="num_segments"):
        tsn_indices(5, 0, train=False)


def test_clip_loader_covers_everything_once_and_is_seeded():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    seen = torch.cat([idx for _, _, idx in ClipLoader(x, y, 3, shuffle=True, seed=1)])
    assert sorted(seen.tolist()) == list(range(10))
    again = torch.cat([idx for _, _, idx in ClipLoader(x, y, 3, shuffle=True, seed=1)])
    assert torch.equal(seen, again)


def _write_gray_jpeg(path, value: int, size: int = 16) -> None:
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path, quality=100)


def test_frame_folder_list_file_round_trip(tmp_path):
    videos = {"a": (8, [2]), "sub/b": (5, [0, 3])}
    lines = []
    for name, (n, labels) in videos.items():
        d = tmp_path / "frames" / name
        d.mkdir(parents=True)
        for i in range(n):  # frame i (0-based) has gray level 20 * (i + 1), written as {:05d}.jpg from 1
            _write_gray_jpeg(d / f"{i + 1:05d}.jpg", 20 * (i + 1))
        lines.append(",".join([name, str(n), *map(str, labels)]))
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    ds = FrameFolderDataset(tmp_path / "frames", tmp_path / "list.txt", num_segments=4, train=False, num_classes=5)
    clip, label, i = ds[0]
    assert clip.shape == (4, 3, 16, 16) and i == 0
    expected = [20 * (j + 1) / 255 for j in tsn_indices(8, 4, train=False).tolist()]
    assert torch.allclose(clip.mean(dim=(1, 2, 3)), torch.tensor(expected), atol=2 / 255)
    assert label.tolist() == [0, 0, 1, 0, 0]
    clip_b, label_b, _ = ds[1]
    assert label_b.tolist() == [1, 0, 0, 1, 0]
    single = FrameFolderDataset(tmp_path / "frames", tmp_path / "list.txt", 2, train=True, size=8)
    assert single[0][0].shape == (2, 3, 8, 8) and int(single[0][1]) == 2
    with pytest.raises(ValueError, match="multi-label"):
        single[1]


def test_list_file_errors_name_the_line(tmp_path):
    (tmp_path / "bad.txt").write_text("vid,notanumber,1\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        parse_list_file(tmp_path / "bad.txt")


def _write_video(path, levels, size=32):
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "1"}
        for v in levels:
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), v, dtype=np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def test_pyav_video_round_trip(tmp_path):
    levels = [16 + 24 * i for i in range(9)]
    _write_video(tmp_path / "v.mp4", levels)
    (tmp_path / "list.txt").write_text("v.mp4,0,4\n")  # 0 = unknown frame count: decoded to count
    ds = VideoFileDataset(tmp_path, tmp_path / "list.txt", num_segments=3, train=False)
    assert ds.num_frames(0) == 9
    clip, label, _ = ds[0]
    assert clip.shape == (3, 3, 32, 32) and int(label) == 4
    expected = [levels[j] / 255 for j in tsn_indices(9, 3, train=False).tolist()]
    assert torch.allclose(clip.mean(dim=(1, 2, 3)), torch.tensor(expected), atol=4 / 255)
