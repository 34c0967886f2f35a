import torch

import experiments.run as runner
from experiments.checkpoint import load_checkpoint
from tests.helpers import FAST, compose


def test_transfer_trains_source_masks_on_target(tmp_path):
    cfg = compose(["experiment=lth_transfer_mnist1d", *FAST, "method.levels=2", "method.source.num_samples=600"])
    rows = runner.run_job(cfg, tmp_path)
    phases = [(r["lth/phase"], r["lth/level"], r["lth/kind"]) for r in rows]
    assert phases.count(("source", 0, "ticket")) == 1
    assert {p for p in phases if p[0] == "transfer"} == {("transfer", lvl, k) for lvl in range(3)
                                                         for k in ("ticket", "random_reinit")}
    for level in (1, 2):
        source_mask = load_checkpoint(tmp_path / "source" / "levels" / f"level_{level:02d}" / "mask.pt")["mask"]
        for kind in ("ticket", "random_reinit"):
            used = load_checkpoint(tmp_path / "transfer" / "levels" / f"level_{level:02d}" / kind / "mask.pt")["mask"]
            assert all(torch.equal(used[k], source_mask[k]) for k in source_mask)
    source_acc = {r["lth/level"]: r["acc/test"] for r in rows if r["lth/phase"] == "source"}
    target_acc = {r["lth/level"]: r["acc/test"] for r in rows if r["lth/phase"] == "transfer"
                  and r["lth/kind"] == "ticket"}
    assert source_acc != target_acc  # trained and evaluated on a different dataset
