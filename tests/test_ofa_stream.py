"""The OFA loop on a streaming source (issue 18): a supernet trained from a DataLoader over an ImageNet-style folder
equals, bit for bit, the same net trained from the same batches held as tensors (0 and 2 workers); each phase of a
schedule reads fresh epochs of the source; `experiment=ofa_imagenet` streams end to end under debug=fast."""

import json

import pytest
import torch

from experiments.batches import TensorBatches
from experiments.streaming import LoaderBatches, LoaderCfg
from experiments.tasks.ofa_stream import Resized, subset_index
from lth.image_stream import ImageFiles, ImageTransform, image_files
from once_for_all import OFASupernet, Phase, SourceBatches, train_schedule
from once_for_all.supernet import resize_input
from tests import paper_miniatures as mini
from tests.helpers import FAST, run_cli
from tests.once_for_all.ofa_testutils import SPEC_2D

PHASES = [Phase("full", 1, 0.05), Phase("kernel", 1, 0.03, kernel_sizes="all", subnets_per_step=2)]


class Recorded:
    """A batch source that notes which epochs it was asked for."""

    def __init__(self, source) -> None:
        self.source, self.steps_per_epoch, self.asked = source, source.steps_per_epoch, []

    def epoch(self, epoch: int, start: int = 0):
        self.asked.append(epoch)
        return self.source.epoch(epoch, start)


def folder_dataset(tmp_path) -> ImageFiles:
    mini.imagenet_folders(tmp_path, classes=3, per_class=6, side=12)
    paths, targets, _ = image_files(tmp_path / "train")
    return ImageFiles(paths, targets, ImageTransform("none"))  # deterministic: the same pixels as the tensors


def train(source) -> dict:
    torch.manual_seed(0)
    net = OFASupernet(SPEC_2D)
    train_schedule(net, PHASES, SourceBatches(source), seed=3, kd_weight=1.0)
    return net.state_dict()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(dataset, weights trained from in-memory TensorBatches, the epochs that source was asked for)."""
    torch.set_num_threads(1)
    ds = folder_dataset(tmp_path_factory.mktemp("imagenet"))
    x = torch.stack([ds.load(i, None)[0] for i in range(len(ds))])  # [18, 3, 12, 12]
    y = torch.tensor([ds.load(i, None)[1] for i in range(len(ds))])
    source = Recorded(TensorBatches(x, y, batch_size=6, seed=3))
    return ds, train(source), source.asked


@pytest.mark.parametrize("workers", [0, 2])
def test_supernet_from_a_loader_equals_the_supernet_from_tensors(reference, workers):
    ds, want, asked = reference
    got = train(LoaderBatches(ds, batch_size=6, seed=3, cfg=LoaderCfg(num_workers=workers)))
    assert asked == [0, 1]  # phase 2 reads the source's epoch 1 (a fresh order), not epoch 0 again
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want)
    torch.manual_seed(0)
    init = OFASupernet(SPEC_2D).state_dict()
    assert any(not torch.equal(init[k], got[k]) for k in init if init[k].is_floating_point())  # it trained


def test_eval_subset_is_the_whole_split_or_a_sorted_seeded_subset():
    assert subset_index(5, None, 0).tolist() == [0, 1, 2, 3, 4]
    assert subset_index(5, 9, 0).tolist() == [0, 1, 2, 3, 4]
    got = subset_index(100, 10, 7)
    assert got.tolist() == sorted(torch.randperm(100, generator=torch.Generator().manual_seed(7))[:10].tolist())
    assert len(set(got.tolist())) == 10



def test_resized_source_is_the_source_at_one_resolution():
    """A static baseline on streaming data trains on the source's batches resized, as `_at` resizes the tensors."""
    x, y = torch.randn(12, 3, 10, 10), torch.arange(12) % 3
    src = TensorBatches(x, y, batch_size=4, seed=1)
    got = list(Resized(src, 6).epoch(2, start=1))
    want = list(src.epoch(2, start=1))
    assert Resized(src, 6).steps_per_epoch == 3 and len(got) == 2
    assert all(torch.equal(g[0], resize_input(w[0], 6)) and torch.equal(g[1], w[1]) for g, w in zip(got, want))
    assert got[0][0].shape == (4, 3, 6, 6)


SHRINK = ["model.resolutions=[32]", "model.stage_widths=[8,8,16,16,24]", "model.stem_channels=8",
          "model.first_block_channels=8", "model.head_channels=32", "model.feature_channels=32"]


@pytest.mark.slow
def test_ofa_imagenet_streams_end_to_end(tmp_path):
    """The stored config (data.in_memory=false, the ImageNet transforms) with 2 workers, its model shrunk."""
    args = [*FAST, "meter=off", "experiment=ofa_imagenet", *mini.imagenet_folders(tmp_path / "data"), *SHRINK,
            "data.crop_size=32", "data.eval_resize=36", "data.num_workers=2", "method.eval_samples=10",
            "method.bn_recal_samples=16", "method.bn_recal_batches=2", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = run_cli(args, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "run" / "summary.json").read_text())["records"]
    kinds = [r["ofa/kind"] for r in rows]
    assert kinds[0] == "supernet" and kinds.count("ofa_corner") == 8 and kinds.count("ofa_target") == 4, kinds
    # val: 3 classes x 4 images (12, capped at 10), test: 12; recalibration: 16 of 24 training images
    assert {r["ofa/eval_data"] for r in rows} == {
        "streamed; in memory (evaluation transform): BN recalibration 16 of 24 train, val 10 of 12, test 10 of 12"}
    assert rows[0]["flops/train_total"] > 0 and 0 <= rows[0]["acc/test"] <= 1
