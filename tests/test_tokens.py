"""Token bins (nanoGPT format): prepare, random windows from a memmap as a function of (seed, step), the MoE
char-LM task on data=tokens, and bad token files named as input errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from experiments.run import run_job
from experiments.token_data import TokenBatches
from sparse_moe.tokens import TokenWindows, random_starts, windows, write_bins
from tests.helpers import ROOT, compose, run_cli

TEXT = "".join(f"line {i}: to be, or not to be, that is the question. é\n" for i in range(300))


def test_prepare_writes_uint16_bytes_and_meta(tmp_path):
    src = tmp_path / "corpus.txt"
    src.write_text(TEXT, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "sparse_moe.prepare", "--input", str(src), "--out",
                           str(tmp_path / "tok"), "--val-fraction", "0.25"], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    raw = TEXT.encode("utf-8")
    cut = int(len(raw) * 0.75)
    assert np.array_equal(np.fromfile(tmp_path / "tok" / "train.bin", dtype=np.uint16), np.frombuffer(raw[:cut], np.uint8))
    assert np.array_equal(np.fromfile(tmp_path / "tok" / "val.bin", dtype=np.uint16), np.frombuffer(raw[cut:], np.uint8))
    meta = json.loads((tmp_path / "tok" / "meta.json").read_text())
    assert meta == {"tokenizer": "bytes", "vocab_size": 256, "dtype": "uint16", "n_train": cut, "n_val": len(raw) - cut}
    missing = subprocess.run([sys.executable, "-m", "sparse_moe.prepare", "--input", str(tmp_path / "nope.txt"),
                              "--out", str(tmp_path / "x")], capture_output=True, text=True,
                             env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert missing.returncode == 4 and "nope.txt" in missing.stderr


def test_gpt2_without_its_files_is_a_clear_error(monkeypatch, tmp_path):
    tiktoken = pytest.importorskip("tiktoken")

    def offline(name):
        raise ConnectionError("no network")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    with pytest.raises(OSError, match="TIKTOKEN_CACHE_DIR"):
        write_bins("hello", tmp_path, "gpt2")


def test_windows_are_memmap_slices_and_starts_a_function_of_seed_and_step(tmp_path):
    ids = np.arange(1000, dtype=np.uint16) * 7
    ids.tofile(tmp_path / "t.bin")
    starts = torch.tensor([0, 5, 990])
    x, y = windows(tmp_path / "t.bin", starts, 9)
    assert x.dtype == torch.int64 and x.shape == (3, 9)
    for row, s in enumerate(starts.tolist()):
        assert x[row].tolist() == ids[s : s + 9].tolist() and y[row].tolist() == ids[s + 1 : s + 10].tolist()
    assert torch.equal(random_starts(1000, 9, 4, 1, 7), random_starts(1000, 9, 4, 1, 7))
    assert not torch.equal(random_starts(1000, 9, 4, 1, 7), random_starts(1000, 9, 4, 1, 8))
    assert int(random_starts(1000, 9, 4096, 0, 0).max()) <= 1000 - 10  # the last window still has block + 1
    source = TokenBatches(tmp_path / "t.bin", 1000, 9, 4, seed=3, steps_per_epoch=5)
    whole, tail = list(source.epoch(2)), list(source.epoch(2, start=3))
    assert len(whole) == 5 and all(torch.equal(a[0], b[0]) for a, b in zip(whole[3:], tail))
    ev = TokenWindows(tmp_path / "t.bin", 9, 500, 1000, count=4)  # evenly spaced in [500, 1000)
    assert [int(ev.load(i)[0][0]) // 7 for i in range(len(ev))] == [500, 663, 826, 989]


def _folder(tmp_path):
    write_bins(TEXT * 4, tmp_path / "tok", "bytes", 0.2)
    return tmp_path / "tok"


def test_moe_char_lm_trains_on_token_bins(tmp_path):
    folder = _folder(tmp_path)
    args = ["experiment=moe_charlm", "data=tokens", f"data.path={folder}", "debug=fast", "progress=false",
            "meter=off"]
    row = run_job(compose(args), tmp_path / "run")[0]
    assert row["data/vocab_size"] == 256 and 0 < row["bpc/test"] < 9 and row["train/steps"] > 0
    again = run_job(compose(args), tmp_path / "run2")[0]
    assert again["loss/test"] == row["loss/test"]  # same seed: same windows, same result


@pytest.mark.parametrize("damage,named", [
    (lambda f: f.joinpath("train.bin").write_bytes(f.joinpath("train.bin").read_bytes()[:-1]), "train.bin"),
    (lambda f: f.joinpath("meta.json").write_text(json.dumps({"dtype": "int32", "vocab_size": 256})), "meta.json"),
    (lambda f: f.joinpath("val.bin").unlink(), "val.bin"),
])
def test_bad_token_folder_is_an_input_error_naming_the_file(tmp_path, damage, named):
    folder = _folder(tmp_path)
    damage(folder)
    done = run_cli(["experiment=moe_charlm", "data=tokens", f"data.path={folder}", "debug=fast", "progress=false",
                    f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 4 and last.startswith("input error:") and str(folder / named) in last, done.stderr[-800:]
    assert not (tmp_path / "run" / "summary.json").exists()  # refused before the run folder was touched



RSS_SCRIPT = """
import re, sys
from pathlib import Path
from experiments.token_data import TokenBatches
path, n = Path(sys.argv[1]), int(sys.argv[2])
source = TokenBatches(path, n, block=256, batch_size=16, seed=0, steps_per_epoch=20)
total = sum(int(x.sum()) for x, _ in source.epoch(0))
status = open("/proc/self/status").read()
print(*(int(re.search(k + r":\\s+(\\d+)", status).group(1)) // 1024 for k in ("RssAnon", "VmHWM")), total)
"""


@pytest.mark.slow
def test_memory_does_not_grow_with_the_token_file(tmp_path):
    """20 batches of 16 x 256-token windows from a 1M-token and a 100M-token train.bin: the process's own
    (anonymous) memory within 100 MB; loading the larger file would add 200 MB as uint16, 800 MB as int64.

    Anonymous, not peak RSS: pages of the memmapped file that the kernel maps around each read (page cache, shared
    and evictable) count in VmHWM and vary with the cache's state (seen: +29 MB in one run, +185 MB in another)."""
    anon = []
    for n in (1_000_000, 100_000_000):
        path = tmp_path / f"train{n}.bin"
        data = np.memmap(path, dtype=np.uint16, mode="w+", shape=(n,))
        data[::4096] = 7  # sparse non-zero tokens; the rest of the file stays zero
        data.flush()
        del data
        out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(path), str(n)], capture_output=True, text=True,
                             check=True, cwd=ROOT)
        anon.append(int(out.stdout.split()[0]))
    assert abs(anon[1] - anon[0]) < 100, anon
