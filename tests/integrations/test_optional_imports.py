"""Optional frameworks stay optional: importing the research packages, meter or the trainer-agnostic parts of
`integrations` never imports transformers, timm or Lightning, and no research package imports `integrations`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPTIONAL = ("transformers", "timm", "lightning", "pytorch_lightning", "lightning_fabric", "accelerate")


def test_core_imports_load_no_optional_framework():
    code = ("import sys, lth, sparse_moe, meter, adaptive_frames, once_for_all, integrations, "
            "integrations.ticket_run, integrations.meter_run\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({OPTIONAL!r})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def _imported(nodes) -> list[str]:
    return [n for node in nodes for n in ([a.name for a in node.names] if isinstance(node, ast.Import) else
                                          [node.module or ""] if isinstance(node, ast.ImportFrom) else [])]


def test_no_research_package_imports_integrations_or_a_framework_at_import_time():
    """`integrations` nowhere; an optional framework only inside a function (imported when used)."""
    bad = []
    for pkg in ("lth", "sparse_moe", "meter", "adaptive_frames", "once_for_all"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text())
            anywhere = [n for n in _imported(ast.walk(tree)) if n.split(".")[0] == "integrations"]
            top = [n for n in _imported(tree.body) if n.split(".")[0] in OPTIONAL]
            bad += [f"{path.relative_to(ROOT)} -> {n}" for n in anywhere + top]
    assert not bad, "research packages must not import integrations, nor optional frameworks at import time:\n" + \
        "\n".join(bad)
