"""The dependency rules of DESIGN.md, read from the source (ast, nothing imported): research packages import
nothing from `experiments`, Hydra or W&B, and of our packages `meter` at most; `meter` imports none of our
packages; no import cycle between modules.

Edges: every `import` / `from ... import`, at module level, inside functions (they run when called) and under
`if TYPE_CHECKING:` (a type checker follows them, and a cycle hidden there is still two modules that each need the
other). Both rules count all of them. `from pkg import name` is an edge to `pkg.name` when that is a module, else
to `pkg`. A package is a folder of ours holding Python files, with or without `__init__.py` (`experiments` is a
namespace package).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [p for p in ("experiments", "meter", "lth", "adaptive_frames", "sparse_moe", "once_for_all")
            if any((ROOT / p).glob("*.py"))]
RESEARCH = [p for p in ("lth", "adaptive_frames", "sparse_moe", "once_for_all") if p in PACKAGES]
FORBIDDEN_IN_RESEARCH = ("experiments", "hydra", "omegaconf", "wandb")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(f): f for pkg in PACKAGES for f in sorted((ROOT / pkg).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, in_function: bool = False):
    """(import node, in_function) for every import under `tree`, `if TYPE_CHECKING:` blocks included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function
        nested = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _imports(node, nested)


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def _ours(name: str) -> str | None:
    """The module of ours `name` resolves to (its longest known prefix), or None for third-party names."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _edges() -> list[tuple[str, str, bool]]:
    """(importer, imported name, in_function) for every import in our packages."""
    out = []
    for module, path in MODULES.items():
        for node, in_function in _imports(ast.parse(path.read_text(), str(path))):
            out.extend((module, target, in_function) for target in _targets(module, node))
    return out


EDGES = _edges()


def _top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("package", RESEARCH)
def test_research_packages_import_no_experiments_hydra_or_wandb(package):
    allowed = (package, "meter")
    bad = sorted({f"{src} -> {dst}" for src, dst, _ in EDGES if _top(src) == package and (
        _top(dst) in FORBIDDEN_IN_RESEARCH or (_top(dst) in PACKAGES and _top(dst) not in allowed))})
    assert not bad, f"{package} must stay a plain PyTorch library; it imports:\n" + "\n".join(bad)


def test_meter_imports_none_of_our_packages():
    bad = sorted({f"{src} -> {dst}" for src, dst, _ in EDGES
                  if _top(src) == "meter" and _top(dst) in PACKAGES and _top(dst) != "meter"})
    assert not bad, "meter is the base layer; it imports:\n" + "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (or a self-import), as a path."""
    index, low, stack, on_stack, sccs = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1 or v in graph.get(v, ()):
                sccs.append(set(scc))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_path_in(graph, scc) for scc in sccs]


def _path_in(graph: dict[str, set[str]], scc: set[str]) -> list[str]:
    """A shortest cycle through the first module of `scc` (breadth-first inside the component)."""
    start = min(scc)
    parents, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & scc):
                if w == start:
                    path = [v]
                    while parents[path[-1]] is not None:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start} in {sorted(scc)}")


def test_no_import_cycle():
    """Function-level and TYPE_CHECKING imports count: a lazy import only hides a cycle until someone moves it."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for src, dst, _ in EDGES:
        target = _ours(dst)
        if target is not None and target != src:
            graph[src].add(target)
    cycles = _cycles(graph)
    assert not cycles, "import cycles (a shortest one per group of modules that import each other):\n" + "\n".join(
        " -> ".join(c) for c in cycles)


def test_the_cycle_finder_reports_a_cycle_as_a_path():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert _cycles(graph) == [["a", "b", "c", "a"], ["e", "e"]] or _cycles(graph) == [["e", "e"], ["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_edges_resolve_relative_imports():
    edges = {(src, dst): in_function for src, dst, in_function in EDGES}
    assert edges[("sparse_moe.layer", "sparse_moe.routers")] is False  # `from .routers import ...`
    assert edges[("sparse_moe", "sparse_moe.upcycle")] is False  # a package's __init__ resolves to itself
    assert "experiments" in PACKAGES and ("experiments.trainer", "experiments.callbacks") in edges  # namespace pkg


def test_edges_include_function_level_and_type_checking_imports():
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\nelse:\n    import b\n"
              "def f():\n    import c\n")
    found = {(getattr(n, "module", None) or n.names[0].name, inside) for n, inside in _imports(ast.parse(source))}
    assert found == {("typing", False), ("a", False), ("b", False), ("c", True)}
