"""The protocol modules import one another in one direction only: no import cycle inside ``gpchannel.scp``.

Every import counts, at module level or inside a function, under ``TYPE_CHECKING`` or not: a lazy import is still
a cycle in the design. Each protocol's primitives (``scpNN``) are imported by its host and card modules, never the
reverse; :mod:`gpchannel.scp.registry` imports the host and card classes and nothing in the package imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import gpchannel.scp

PACKAGE = "gpchannel.scp"
ROOT = Path(gpchannel.scp.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join((PACKAGE, *parts)).removesuffix(".__init__")


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports (``from gpchannel.scp import x`` names module ``x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found & modules


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(paths)
    return {name: _imports(path, modules) - {name} for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path that ends where it starts) per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append([*sorted(component), sorted(component)[0]])

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_scp_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert f"{PACKAGE}.scp03_host" in graph and f"{PACKAGE}.scp03" in graph[f"{PACKAGE}.scp03_host"]
    assert cycles(graph) == []


def test_the_primitives_do_not_import_their_state_machines() -> None:
    graph = import_graph()
    for number in ("01", "02", "03", "10"):
        primitives = f"{PACKAGE}.scp{number}"
        assert not graph[primitives] & {f"{primitives}_host", f"{primitives}_card"}


def test_nothing_in_the_package_imports_the_registry() -> None:
    graph = import_graph()
    registry = f"{PACKAGE}.registry"
    assert [name for name, targets in graph.items() if registry in targets] == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
