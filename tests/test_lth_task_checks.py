"""The LTH task's own rules: early stopping needs a validation split, and the output layer the task prunes at
method.output_prune_fraction is the model's real output layer (or the one method.output_layer names)."""

from __future__ import annotations

import pytest
import torch

from experiments.config import validate
from experiments.schema import ConfigError
from experiments.tasks.lth import ticket_kwargs
from lth.imp import IMP
from tests.helpers import FAST, compose
from tests.lth.test_output_layer import HeadFirst


def test_no_validation_split_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"data\.val_fraction=0\.0 is invalid.*test split"):
        validate(compose([*FAST, "data.val_fraction=0.0"]))
    validate(compose([*FAST, "data.val_fraction=0.1"]))  # any validation split is fine


def test_image_folder_with_a_val_folder_needs_no_val_fraction(tmp_path):
    for split in ("train", "val", "test"):
        (tmp_path / split / "a").mkdir(parents=True)
    validate(compose([*FAST, "data=image_folder", f"data.root={tmp_path}", "data.val_fraction=0.0"]))
    (tmp_path / "val" / "a").rmdir()
    (tmp_path / "val").rmdir()
    with pytest.raises(ConfigError, match=r"data\.val_fraction"):
        validate(compose([*FAST, "data=image_folder", f"data.root={tmp_path}", "data.val_fraction=0.0"]))


@pytest.mark.parametrize("override, head", [([], "head.weight"), (["method.output_layer=body.2"], "body.2.weight")])
def test_the_task_prunes_the_forward_pass_output_layer_or_the_named_one(override, head):
    cfg = validate(compose([*FAST, "method.output_prune_fraction=0.5", *override]))
    imp = IMP(HeadFirst, **ticket_kwargs(cfg, 10, torch.zeros(1, 8)))
    assert imp.ticket.rates.per_layer == {head: 0.5}


def test_moe_clustered_without_a_validation_split_is_refused():
    """The MoE task's early-stop metrics would otherwise be chosen on the test split (as LTH's, above)."""
    base = ["experiment=moe_clustered", "debug=fast"]
    with pytest.raises(ConfigError, match=r"data\.val_fraction=0\.0 is invalid.*test split"):
        validate(compose([*base, "data.val_fraction=0.0"]))
    validate(compose([*base, "data.val_fraction=0.1"]))
