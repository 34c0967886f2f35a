"""data=video_list streaming: AR-Net list files over frame folders and short PyAV-encoded videos, decoded when drawn.

Frame j (0-based) of every miniature video is a constant grey 20 + 30 * j, so a clip's per-frame means say which
frames were sampled. Checks: exact TSN sampling (centre for evaluation, seeded offsets for training), 0 vs 2 workers
give the same batches, a mid-epoch restart replays the rest of the epoch exactly, the task end to end on both
formats, input errors naming the file, and (slow) peak RSS flat in the number of listed clips.
"""

import json
import subprocess
import sys
import textwrap

import av
import numpy as np
import pytest
import torch
from PIL import Image

import experiments.run as runner
from adaptive_frames.data.frames import FrameFolderDataset
from adaptive_frames.data.sampling import tsn_indices
from adaptive_frames.data.video import VideoFileDataset
from experiments.errors import InputError
from experiments.streaming import LoaderBatches, LoaderCfg, sample_generator
from tests.helpers import compose

pytestmark = pytest.mark.usefixtures("one_thread")
FRAMES = 8  # per video
SIZE = 32


def grey(j: int) -> int:
    return 20 + 30 * j


def write_frames(root, name: str, n: int = FRAMES) -> None:
    folder = root / "frames" / name
    folder.mkdir(parents=True)
    for j in range(n):
        Image.fromarray(np.full((SIZE, SIZE, 3), grey(j), np.uint8)).save(folder / f"{j + 1:05d}.jpg", quality=100)


def write_video(root, name: str, n: int = FRAMES) -> None:
    path = root / "videos" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        for j in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((SIZE, SIZE, 3), grey(j), np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def write_dataset(root, kind: str, n_train: int = 6, n_test: int = 4, multilabel: bool = False) -> dict:
    """AR-Net list files (`path,num_frames,label[,label...]`) over frame folders or .mp4 files; returns overrides.
    Labels: video v has class v % 2 (and, multi-label as in ActivityNet/FCVID, also class 2 when v % 3 == 0)."""
    for split, n in (("train", n_train), ("test", n_test)):
        lines = []
        for v in range(n):
            name = f"{split}_v{v}" + (".mp4" if kind == "video_files" else "")
            (write_frames if kind == "frame_folders" else write_video)(root, name)
            labels = [v % 2] + ([2] if multilabel and v % 3 == 0 else [])
            lines.append(",".join([name, str(FRAMES), *map(str, labels)]))
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    sub = "frames" if kind == "frame_folders" else "videos"
    return {"data.name": kind, "data.root": str(root / sub), "data.train_list": str(root / "train.txt"),
            "data.test_list": str(root / "test.txt"), "data.num_classes": 3 if multilabel else 2,
            "data.multilabel": multilabel}


def dataset(root, kind: str, train: bool = True, segments: int = 4):
    cls = FrameFolderDataset if kind == "frame_folders" else VideoFileDataset
    sub = "frames" if kind == "frame_folders" else "videos"
    return cls(root / sub, root / ("train.txt" if train else "test.txt"), num_segments=segments, train=train)


def sampled_frames(clip: torch.Tensor) -> list[int]:
    """The frame index each of clip [T, C, H, W]'s frames came from, read off its grey level."""
    return [round((float(m) * 255 - 20) / 30) for m in clip.mean(dim=(1, 2, 3))]


KINDS = ["frame_folders", "video_files"]


@pytest.mark.parametrize("kind", KINDS)
def test_load_samples_tsn_centres_for_eval_and_seeded_offsets_for_training(tmp_path, kind):
    write_dataset(tmp_path, kind, n_train=2, n_test=1)
    ds = dataset(tmp_path, kind)
    clip, label = ds.load(1, None)
    assert clip.shape == (4, 3, SIZE, SIZE) and int(label) == 1
    assert sampled_frames(clip) == tsn_indices(FRAMES, 4, train=False).tolist() == [1, 3, 5, 7]
    drawn = sampled_frames(ds.load(0, sample_generator(3, 1, 0))[0])
    assert drawn == tsn_indices(FRAMES, 4, train=True, generator=sample_generator(3, 1, 0)).tolist()
    assert all(2 * s <= f < 2 * s + 2 for s, f in enumerate(drawn))  # one frame per segment of 2
    assert torch.equal(ds.load(0, sample_generator(3, 1, 0))[0], ds.load(0, sample_generator(3, 1, 0))[0])
    draws = {tuple(sampled_frames(ds.load(0, sample_generator(3, e, 0))[0])) for e in range(8)}
    assert len(draws) > 1  # offsets change with the epoch


def batches(source, epoch, start=0):
    return [(x.clone(), y.clone()) for x, y in source.epoch(epoch, start)]


@pytest.mark.parametrize("kind", KINDS)
def test_workers_do_not_change_batches_and_a_mid_epoch_restart_is_exact(tmp_path, kind):
    write_dataset(tmp_path, kind, n_train=8, n_test=1)
    ds = dataset(tmp_path, kind)
    plain = LoaderBatches(ds, 2, seed=5, cfg=LoaderCfg(num_workers=0))
    workers = LoaderBatches(ds, 2, seed=5, cfg=LoaderCfg(num_workers=2))
    a, b = batches(plain, 1), batches(workers, 1)
    assert len(a) == len(b) == 4
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    resumed = batches(LoaderBatches(ds, 2, seed=5, cfg=LoaderCfg(num_workers=2)), 1, start=2)  # a fresh process
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a[2:], resumed))
    assert not torch.equal(a[0][0], batches(plain, 2)[0][0])  # a new epoch draws anew


def af_overrides(data: dict, *extra: str) -> list[str]:
    return ["experiment=af_needle", "data=video_list", *(f"{k}={v}" for k, v in data.items()),
            "data.num_segments=4", "data.size=16", "model.resolutions=[16,8]", "model.policy.input_size=8",
            "method.pretrain_epochs=1", "method.policy_epochs=1", "method.uniform_k=[1]",
            "method.frame_exit_thresholds=[0.9]", "method.backbone_cache=false", "optim.batch_size=2",
            "method.eval_batch_size=3", "progress=false", *extra]


KEYS = ("af/method", "af/setting", "acc/test", "map/test", "flops/train_total", "flops/infer_per_sample",
        "policy_train/loss")


@pytest.mark.parametrize("kind, multilabel", [("frame_folders", False), ("video_files", True)])
def test_task_streams_both_formats_the_same_with_or_without_workers(tmp_path, kind, multilabel):
    data = write_dataset(tmp_path / "d", kind, multilabel=multilabel)
    rows = {w: runner.run_job(compose(af_overrides(data, "data.in_memory=false", f"data.num_workers={w}")),
                              tmp_path / f"run{w}") for w in (0, 2)}
    assert [[r.get(k) for k in KEYS] for r in rows[0]] == [[r.get(k) for k in KEYS] for r in rows[2]]
    metric = "map/test" if multilabel else "acc/test"
    assert all(r[metric] is not None and r["af/num_test_videos"] == 4 for r in rows[0])
    summary = json.loads((tmp_path / "run2" / "summary.json").read_text())
    assert summary["status"] == "completed"


def test_in_memory_true_is_unchanged_by_the_streaming_options(tmp_path):
    data = write_dataset(tmp_path / "d", "frame_folders")
    a = runner.run_job(compose(af_overrides(data)), tmp_path / "a")  # auto: the miniature fits the budget
    b = runner.run_job(compose(af_overrides(data, "data.in_memory=true", "data.num_workers=2")), tmp_path / "b")
    assert [[r.get(k) for k in KEYS] for r in a] == [[r.get(k) for k in KEYS] for r in b]


@pytest.mark.parametrize("kind", KINDS)
def test_a_listed_video_that_is_missing_is_named_before_the_run_folder(tmp_path, kind):
    data = write_dataset(tmp_path / "d", kind)
    with open(data["data.train_list"], "a") as f:
        f.write("gone_v9,8,1\n")
    with pytest.raises(InputError, match="gone_v9"):
        runner.run_job(compose(af_overrides(data, "data.in_memory=false")), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_malformed_list_line_is_named(tmp_path):
    data = write_dataset(tmp_path / "d", "frame_folders")
    with open(data["data.test_list"], "a") as f:
        f.write("train_v1,eight,1\n")
    with pytest.raises(InputError, match=r"test.txt:5: 'train_v1,eight,1'"):
        runner.run_job(compose(af_overrides(data, "data.in_memory=false")), tmp_path / "run")


@pytest.mark.parametrize("in_memory", ["false", "true"])
def test_an_undecodable_video_is_an_input_error_and_the_run_is_not_complete(tmp_path, in_memory):
    data = write_dataset(tmp_path / "d", "video_files")
    (tmp_path / "d" / "videos" / "train_v3.mp4").write_bytes(b"not a video" * 100)
    with pytest.raises(InputError, match="train_v3.mp4"):
        runner.run_job(compose(af_overrides(data, f"data.in_memory={in_memory}", "data.num_workers=2")),
                       tmp_path / "run")
    summary = tmp_path / "run" / "summary.json"
    assert not summary.exists() or json.loads(summary.read_text())["status"] != "completed"


def test_skip_bad_leaves_an_undecodable_video_out_and_counts_it(tmp_path):
    data = write_dataset(tmp_path / "d", "video_files")
    (tmp_path / "d" / "videos" / "test_v2.mp4").write_bytes(b"not a video" * 100)
    rows = runner.run_job(compose(af_overrides(data, "data.in_memory=false", "data.skip_bad=true")),
                          tmp_path / "run")
    assert all(r["data/skipped_bad"] == 1 for r in rows)


RSS_SCRIPT = textwrap.dedent("""
    import resource, sys, torch
    torch.set_num_threads(1)
    from experiments.tasks.af_data import AF_DATA
    from tests.helpers import compose
    from experiments.config import validate
    cfg = validate(compose(sys.argv[2:]))
    data = AF_DATA.get(cfg.data.name)(cfg)
    source = data.stream.train_batches(8, 0)
    for step, (x, y) in enumerate(source.epoch(0)):
        if step == 2:
            break
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, len(data.train_clips))
""")


@pytest.mark.slow
def test_peak_rss_does_not_grow_with_the_number_of_clips(tmp_path):
    """2,000 vs 20,000 listed clips (over 8 frame folders), 3 batches with 2 workers: peak RSS within 100 MB."""
    data = write_dataset(tmp_path, "frame_folders", n_train=8, n_test=2)
    train = (tmp_path / "train.txt").read_text().splitlines()
    peaks = []
    for n in (2_000, 20_000):
        (tmp_path / f"train{n}.txt").write_text("\n".join(train[i % 8] for i in range(n)) + "\n")
        over = af_overrides({**data, "data.train_list": str(tmp_path / f"train{n}.txt")}, "data.in_memory=false",
                            "data.num_workers=2", "data.size=112")
        out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, "x", *over], capture_output=True, text=True,
                             check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
        mb, clips = map(int, out.stdout.split()[-2:])
        assert clips == n
        peaks.append(mb)
    # in memory, 18,000 more clips of 4 x 3 x 112 x 112 float32 would be ~3.5 GB more
    assert abs(peaks[1] - peaks[0]) < 100, peaks
