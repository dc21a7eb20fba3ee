"""The project's import graph, read from the source (ast): who imports whom, and its circles.

Every import counts, at the top of a module or deferred inside a function (a deferred import is
still an import once it runs); those under ``if TYPE_CHECKING:`` are kept apart, as ``typing``
edges, since they never run but still tie one module's shape to another's.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Folders whose modules are imported from a root other than the repository's (the function's code).
PACKAGE_ROOTS = (ROOT / "functions" / "consumer",)
SKIPPED = frozenset({"tests", ".venv", "node_modules", ".cache", "cdk.out", "__pycache__"})


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    typing: bool  # only under ``if TYPE_CHECKING:``


def module_name(path: Path) -> str:
    base = next((root for root in PACKAGE_ROOTS if path.is_relative_to(root)), ROOT)
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(folders: Iterable[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if not SKIPPED.intersection(path.relative_to(ROOT).parts):
                found[module_name(path)] = path
    return found


@functools.cache
def parsed(path: Path) -> ast.Module:
    """The module's syntax tree, read once a run (the layer tests read the same files several times)."""
    return ast.parse(path.read_text(), filename=str(path))


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(node: ast.Import | ast.ImportFrom, package: str) -> Iterator[str]:
    """The dotted names an import statement may bind: the module, and each ``from`` name under it."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        parts = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*parts, *([node.module] if node.module else [])])
    yield base
    yield from (f"{base}.{alias.name}" for alias in node.names)


def edges(folders: Iterable[str]) -> list[Edge]:
    """Every import of one of the folders' modules by another, once per (source, target, typing)."""
    found = modules(folders)
    result: set[Edge] = set()
    for name, path in found.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]

        def visit(node: ast.AST, typing: bool, source: str = name, package: str = package) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and _type_checking(child):
                    for statement in child.body:
                        visit(ast.Module(body=[statement], type_ignores=[]), True)
                    for statement in child.orelse:
                        visit(ast.Module(body=[statement], type_ignores=[]), typing)
                    continue
                if isinstance(child, ast.Import | ast.ImportFrom):
                    for imported in _imported(child, package):
                        target = _known(imported, found)
                        # A module's own package (its __init__) is not a dependency of interest.
                        if target and target != source and not source.startswith(f"{target}."):
                            result.add(Edge(source, target, typing))
                visit(child, typing)

        visit(parsed(path), False)
    return sorted(result, key=lambda edge: (edge.source, edge.target, edge.typing))


def _known(name: str, found: dict[str, Path]) -> str | None:
    """The module ``name`` is, or is inside of (a class, a function), when it is one of ``found``."""
    while name and name not in found:
        name = name.rpartition(".")[0]
    return name or None


def circles(graph_edges: Iterable[Edge]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's), each sorted."""
    graph: dict[str, set[str]] = {}
    for edge in graph_edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found)
