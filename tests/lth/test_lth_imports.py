"""lth is a plain PyTorch library: no module cycle inside it, and nothing imported from experiments, Hydra or W&B."""

import ast
from pathlib import Path

import lth

PKG = Path(lth.__file__).parent
FORBIDDEN = ("experiments", "hydra", "omegaconf", "wandb")


def _module(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """module -> modules it imports (absolute names, any depth of the file, lazy imports included)."""
    graph = {}
    for path in PKG.rglob("*.py"):
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                edges.add(node.module)
                edges |= {f"{node.module}.{a.name}" for a in node.names}  # `from lth import data` is lth.data
        graph[_module(path)] = edges
    return {m: {e for e in es if e in graph and e != m} | {e for e in es if e.startswith(FORBIDDEN)}
            for m, es in graph.items()}


def test_no_forbidden_imports():
    bad = {m: sorted(e for e in es if e.split(".")[0] in FORBIDDEN) for m, es in import_graph().items()}
    assert {m: e for m, e in bad.items() if e} == {}


def test_no_cycles_except_the_package_init():
    graph = {m: {e for e in es if e != "lth"} for m, es in import_graph().items()}  # `lth` imports all: a root
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for e in graph.get(m, ()):
            assert state.get(e) != 1, f"import cycle: {' -> '.join(stack + [m, e])}"
            if e not in state:
                visit(e, stack + [m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])
    assert "lth.models" in graph and "lth.model_registry" in graph["lth.convnets"]
