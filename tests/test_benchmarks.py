"""Benchmarks report what they claim: `lth_library_speed.py --profile` attributes time to functions that exist
and run (a renamed function used to print 0 % for evaluation, always)."""

from __future__ import annotations

import ast
import cProfile
import importlib.util
import pstats

import pytest
import torch

from tests.helpers import ROOT


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _defined_functions() -> set[tuple[str, str]]:
    out = set()
    for pkg in ("experiments", "lth", "meter"):
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    out.add((path.name, node.name))
    return out


def test_every_profiled_part_names_a_defined_function():
    bench = _load("lth_library_speed")
    defined = _defined_functions()
    missing = [part for part in bench.PROFILE_PARTS if part not in defined]
    assert not missing, f"PROFILE_PARTS names functions that do not exist: {missing}"


@pytest.mark.slow  # trains 200 steps of LeNet-300-100 under cProfile
def test_profile_attributes_a_real_share_to_evaluation(tmp_path):
    bench = _load("lth_library_speed")
    torch.set_num_threads(1)
    data = bench.make_data()
    prof = cProfile.Profile()
    prof.runcall(bench.task, data, 2 * bench.EVAL_EVERY, tmp_path)
    total, shares = bench.profile_shares(pstats.Stats(prof).stats)
    assert total > 0
    assert 0 < shares["trainer.py", "evaluate"] < 1  # two evaluations on 15K samples: never 0 %
    assert all(0 <= s <= 1 for s in shares.values())
