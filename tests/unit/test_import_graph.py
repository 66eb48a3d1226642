"""No import cycles among llmgw's modules: neither at module level nor through imports inside functions (a cycle
hidden in a function is one refactor away from an ImportError at start-up).

The graph is read from the source with :mod:`ast`: ``import a.b`` and ``from a.b import c`` are edges to ``a.b``
(and to ``a.b.c`` when that is a module); importing ``a.b.c`` also imports the packages ``a.b`` above it, unless
the importing module lives inside them already. Imports under ``if TYPE_CHECKING:`` are not executed and do not
count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "llmgw"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, *, in_functions: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and _type_checking(child):
            continue
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) and not in_functions:
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _imports(child, in_functions=in_functions)


def _is_inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def imported_by(name: str, *, in_functions: bool) -> set[str]:
    """The llmgw modules that importing ``name`` imports directly."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _imports(ast.parse(path.read_text(encoding="utf-8")), in_functions=in_functions):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        submodules = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in MODULES]
        targets.update(submodules)
        if len(submodules) < len(node.names) or not _is_inside(name, module):
            targets.add(module)   # names from the module itself (a package's __init__ included)
    edges: set[str] = set()
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            above = ".".join(parts[:i])
            if above in MODULES and above != name and (above == target or not _is_inside(name, above)):
                edges.add(above)
    return edges


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
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
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_edges_it_should() -> None:
    """Guard the reader itself: a known module-level edge and a known function-level one."""
    assert "llmgw.errors" in imported_by("llmgw.guardrails.rules", in_functions=False)
    assert "llmgw.cache.redis_store" not in imported_by("llmgw.cache.store", in_functions=False)
    assert "llmgw.cache.redis_store" in imported_by("llmgw.cache.store", in_functions=True)


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("in_functions", [False, True], ids=["module-level", "with-function-level"])
def test_no_import_cycles(in_functions: bool) -> None:
    graph = {name: imported_by(name, in_functions=in_functions) for name in MODULES}
    assert cycles(graph) == []
