"""The import contracts of gpchannel's layers, and the checker that enforces them over the source tree.

Every import counts: at module level, inside a function, under ``TYPE_CHECKING`` (a lazy import is still a
dependency, and a cycle in the design). ``from gpchannel.pkg import name`` names module ``gpchannel.pkg.name``
when there is one, else ``gpchannel.pkg``; importing ``gpchannel.pkg.mod`` does not count as importing the
package's ``__init__``. Top-level names are the unit of a layer: a subpackage (``gpchannel.scp``) or a
top-level module (``gpchannel.errors``).

The layers, lowest first (docs/architecture.md draws them):

========== ======================================================= =============================================
layer      units                                                   may import
========== ======================================================= =============================================
base       errors, codec, crypto, data (package data)              base
core       gp, ota, ram, scp, keystore, card, trace                base, core
host       host (the host tool's session, sans-I/O)                base, core
adapters   io, smpp (the SMPP adapter)                             base, core, adapters
apps       emulator, mitm, demo                                    base, core, host, adapters, itself
server     server                                                  base, core, adapters, server
cli        cli                                                     everything
========== ======================================================= =============================================

So the core imports none of io, smpp, server, cli, emulator, mitm, host; io imports only the core; nothing but
``server`` itself and ``cli`` imports ``server``; and no module imports itself back through others.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ALLOWED",
    "LAYERS",
    "Import",
    "cycles",
    "import_graph",
    "layer_violations",
    "unit_of",
    "unknown_units",
]

LAYERS: dict[str, frozenset[str]] = {
    "base": frozenset({"errors", "codec", "crypto", "data"}),
    "core": frozenset({"gp", "ota", "ram", "scp", "keystore", "card", "trace"}),
    "host": frozenset({"host"}),
    "adapters": frozenset({"io", "smpp"}),
    "emulator": frozenset({"emulator"}),
    "mitm": frozenset({"mitm"}),
    "demo": frozenset({"demo"}),
    "server": frozenset({"server"}),
    "cli": frozenset({"cli"}),
    "package": frozenset({"__init__"}),
}

_BASE = LAYERS["base"]
_CORE = _BASE | LAYERS["core"]
_ADAPTERS = _CORE | LAYERS["adapters"]
_APPS = _ADAPTERS | LAYERS["host"]
_EVERYTHING = frozenset().union(*LAYERS.values())

ALLOWED: dict[str, frozenset[str]] = {
    **dict.fromkeys(LAYERS["base"], _BASE),
    **dict.fromkeys(LAYERS["core"], _CORE),
    "host": _CORE | {"host"},
    **dict.fromkeys(LAYERS["adapters"], _ADAPTERS),
    "emulator": _APPS | {"emulator"},
    "mitm": _APPS | {"mitm"},
    "demo": _APPS | {"demo"},
    "server": _ADAPTERS | {"server"},
    "cli": _EVERYTHING,
    "__init__": frozenset(),
}
"""Unit -> the units it may import (itself included where listed)."""


@dataclass(frozen=True, slots=True)
class Import:
    """One import of a project module by another, where it is written."""

    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def _imports_of(name: str, path: Path, modules: set[str]) -> Iterator[tuple[str, int]]:
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            submodules = [f"{module}.{alias.name}" for alias in node.names]
            named = [sub for sub in submodules if sub in modules]
            for target in named:
                yield target, node.lineno
            if len(named) < len(submodules):
                yield module, node.lineno


def _resolve(target: str, modules: set[str]) -> str | None:
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def import_graph(root: Path) -> dict[str, list[Import]]:
    """Module -> its imports of other modules of the package at ``root`` (the package's directory)."""
    paths = {_module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    modules = set(paths)
    graph: dict[str, list[Import]] = {}
    for name, path in paths.items():
        found: dict[str, Import] = {}
        for raw, line in _imports_of(name, path, modules):
            target = _resolve(raw, modules)
            if target is not None and target != name and target not in found:
                found[target] = Import(name, target, line)
        graph[name] = sorted(found.values(), key=lambda i: (i.line, i.target))
    return graph


def unit_of(module: str) -> str:
    """The layer unit of a module: ``gpchannel.scp.scp03`` -> ``scp``; the root package itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def unknown_units(graph: Mapping[str, list[Import]], allowed: Mapping[str, frozenset[str]] = ALLOWED) -> list[str]:
    """Units of the tree that no contract places (a new package must be given its layer)."""
    return sorted({unit_of(m) for m in graph} - set(allowed))


def layer_violations(
    graph: Mapping[str, list[Import]], allowed: Mapping[str, frozenset[str]] = ALLOWED
) -> list[Import]:
    """The imports that cross a layer the wrong way."""
    found = []
    for imports in graph.values():
        for imp in imports:
            source, target = unit_of(imp.source), unit_of(imp.target)
            if source != target and target not in allowed.get(source, frozenset()):
                found.append(imp)
    return found


def cycles(graph: Mapping[str, list[Import]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan), as a sorted list of its
    members followed by the first again."""
    edges = {name: sorted({i.target for i in imports}) for name, imports in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, []):
            if target not in index:
                visit(target)
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
                members = sorted(component)
                found.append([*members, members[0]])

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found
