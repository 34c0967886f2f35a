"""The run-record contract as code: strict JSON at any depth, the contract check in the writer, one documented
key list that the README's table equals, and files with the user's umask."""

import json
import math
import os
import re

import pytest

from experiments.record_keys import RECORD_KEYS, ROW_KEYS, markdown_table
from experiments.records import (
    RecordError,
    atomic_write_json,
    check_rows,
    strict,
    undocumented_keys,
    write_summary,
)
from tests.helpers import ROOT


def _strict_load(path):
    def refuse(token):
        raise ValueError(f"non-strict JSON token {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def _row(**extra):
    return {k: 1 for k in ROW_KEYS} | extra


def test_nonfinite_values_at_any_depth_become_null_with_the_reason_beside_them(tmp_path):
    row = _row(**{"acc/test": float("nan"), "curve/val": [{"step": 1, "loss/val": 0.5},
                                                         {"step": 2, "loss/val": float("inf")}],
                  "flat": [0.5, float("-inf")]})
    write_summary(tmp_path, "completed", [row])
    out = _strict_load(tmp_path / "summary.json")["records"][0]
    assert out["acc/test"] is None and out["acc/test__nonfinite"] == "nan"
    assert out["curve/val"] == [{"step": 1, "loss/val": 0.5}, {"step": 2, "loss/val": None}]
    assert out["curve/val__nonfinite"] == {"1/loss/val": "inf"}
    assert out["flat"] == [0.5, None] and out["flat__nonfinite"] == {"1": "-inf"}
    assert "step__nonfinite" not in out["curve/val"][0]


def test_strict_leaves_finite_values_alone_and_nests_siblings_in_nested_dicts():
    obj = {"row": {"a": 1.5, "b": float("nan"), "s": "x"}, "n": None}
    assert strict(obj) == {"row": {"a": 1.5, "b": None, "b__nonfinite": "nan", "s": "x"}, "n": None}
    assert math.isnan(obj["row"]["b"])  # the input is not modified


def test_result_json_is_strict(tmp_path):
    atomic_write_json(tmp_path / "result.json", {"row": {"curve/val": [float("nan")]}})
    assert _strict_load(tmp_path / "result.json") == {"row": {"curve/val": [None],
                                                               "curve/val__nonfinite": {"0": "nan"}}}


def test_completed_summary_missing_a_contract_key_raises_naming_row_and_key_and_writes_nothing(tmp_path):
    bad = _row(**{"lth/level": 2, "lth/kind": "ticket"})
    del bad["energy/kwh"]
    with pytest.raises(RecordError, match=r"row 1 .*'lth/level': 2.*'energy/kwh'"):
        write_summary(tmp_path, "completed", [_row(), bad])
    assert not (tmp_path / "summary.json").exists()
    write_summary(tmp_path, "failed", [bad], error="boom")  # a failed run keeps what it has
    assert _strict_load(tmp_path / "summary.json")["status"] == "failed"
    check_rows([_row()])


def test_summary_is_written_with_the_user_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_summary(tmp_path, "completed", [_row()])
    finally:
        os.umask(old)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o644


def test_readme_record_key_table_is_the_documented_list():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- record-keys:begin -->\n(.*?)\n<!-- record-keys:end -->", readme, re.S)
    assert block, "README.md lacks the <!-- record-keys:begin/end --> block"
    assert block.group(1) == markdown_table(), "regenerate with experiments.record_keys.markdown_table()"


def test_undocumented_keys_are_found_and_patterns_match():
    assert undocumented_keys({"final/moe/layer3/load_max": 1, "acc/test": 1, "acc/test__nonfinite": "nan"}) == []
    assert undocumented_keys({"acc/tset": 1}) == ["acc/tset"]
    assert ROW_KEYS[-2:] == ("runtime/threads", "runtime/torch") and set(ROW_KEYS) <= set(RECORD_KEYS)
