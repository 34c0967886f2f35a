"""Every ```python block of README.md runs as written, each in its own process (cwd = repo root, W&B disabled), so
the README cannot drift from the code. A block preceded by a `<!-- no-test -->` line is illustrative and skipped."""

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT

NO_TEST = "<!-- no-test -->"
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, code) of each ```python block not marked no-test."""
    blocks = []
    for m in _BLOCK.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if before.strip() != NO_TEST:
            blocks.append((text.count("\n", 0, m.start()) + 1, m.group(1)))
    return blocks


BLOCKS = python_blocks((ROOT / "README.md").read_text())


def test_extraction_finds_blocks_and_honours_no_test():
    text = "a\n```python\nx = 1\n```\n<!-- no-test -->\n```python\ny = 2\n```\n```bash\nls\n```\n"
    assert python_blocks(text) == [(2, "x = 1\n")]
    assert BLOCKS, "README.md has no ```python block"


@pytest.mark.parametrize("line,code", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_block_runs(line, code):
    env = {**os.environ, "WANDB_MODE": "disabled", "CI": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"README.md block at line {line} failed:\n{done.stderr[-3000:]}"
