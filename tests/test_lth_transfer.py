import torch

import experiments.run as runner
from experiments.checkpoint import load_checkpoint
from experiments.config import validate
from experiments.objectives import Classification
from experiments.tasks.lth import init_model, load_data
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
    # Each transfer ticket's accuracy is its trained weights' accuracy on the TARGET test set (not the source's).
    typed = validate(cfg)
    target = load_data(typed)
    for row in (r for r in rows if r["lth/phase"] == "transfer" and r["lth/kind"] == "ticket"):
        model = init_model(typed, target, 0)
        unit = tmp_path / "transfer" / "levels" / f"level_{row['lth/level']:02d}" / "ticket"
        model.load_state_dict(load_checkpoint(unit / "final.pt")["model"])
        assert Classification().evaluate(model, target.x_test, target.y_test)["acc"] == row["acc/test"]
