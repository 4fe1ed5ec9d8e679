"""The architecture as tests: layers point one way, keys/ and protocol/ do no I/O and read no clock, mypy strict
passes, and node/'s parts import only the parts below them, with no import cycle anywhere in node/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_PURE = {"asyncio", "aiohttp", "aiosqlite", "sqlite3", "socket", "zeroconf", "time", "datetime", "node"}
FORBIDDEN_IN_KEYS = FORBIDDEN_IN_PURE | {"protocol"}

# The parts of node/ and which other parts each may import (docs/ARCHITECTURE.md). A part is a
# sub-package (node/store/) or a top-level module (node/home.py); the composition root, service,
# builds them all, and only the CLI runs it.
LEAVES = {"errors", "faults", "metrics", "clock", "quiet"}
NODE_PARTS: dict[str, set[str]] = {
    "__init__": set(),
    "errors": set(),
    "faults": set(),
    "metrics": set(),
    "clock": set(),
    "quiet": set(),
    "home": {"errors"},
    "tasks": {"errors"},
    "tls": {"errors"},
    "client": {"errors", "clock"},
    "store": {"errors", "faults"},
    "interfaces": {"store"},
    "policy": {"errors", "store"},
    "discovery": {"errors", "quiet", "store", "client", "interfaces", "tasks"},
    "notify": {"errors", "faults", "metrics", "store", "interfaces", "tasks", "discovery"},
    "server": {"errors", "quiet", "metrics", "store", "interfaces", "client", "policy", "clock"},
    "witness": {"errors", "store", "interfaces", "discovery"},
    "overview": {"errors", "store", "discovery"},
    "care": {"errors", "store", "interfaces"},
    "backup": {"errors", "home", "store"},
    "enrol": {"errors", "home", "server"},
    "admin": {"errors", "home", "store", "discovery", "notify", "overview", "care", "policy"},
    "relay": {"errors", "metrics", "store", "server", "client"},
    "service": {"errors", "metrics", "clock", "home", "tasks", "client", "store", "interfaces", "policy", "discovery", "notify",
                "server", "admin", "witness", "overview", "care", "tls", "relay"},
    "worker": {"errors", "home", "tasks", "tls", "client", "clock", "metrics", "discovery", "policy", "relay", "server",
               "store"},
    "cli": {"errors", "home", "store", "policy", "admin", "service", "backup", "tls", "enrol", "tasks"},
    "__main__": {"cli"},
}


def imports(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {(path.name, a.name.split(".")[0]) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((path.name, node.module.split(".")[0]))
    return found


@pytest.mark.parametrize("package,forbidden", [("keys", FORBIDDEN_IN_KEYS), ("protocol", FORBIDDEN_IN_PURE)])
def test_pure_layers_import_no_io_clock_or_higher_layer(package: str, forbidden: set[str]) -> None:
    bad = sorted((f, m) for f, m in imports(package) if m in forbidden)
    assert bad == []


def test_pure_layers_call_no_clock() -> None:
    for package in ("keys", "protocol"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            assert "time.time" not in text and "datetime.now" not in text and "monotonic" not in text, path


def test_mypy_strict_passes_on_keys_and_protocol() -> None:
    api = pytest.importorskip("mypy.api")
    out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), str(ROOT / "keys"), str(ROOT / "protocol")])
    assert status == 0, out + err


# node/: parts and cycles ------------------------------------------------------------------


def module_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Every module of ``package`` under ``root`` and the modules of that package it imports (also inside functions)."""
    modules = {}
    for path in (root / package).rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


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
        for w in graph.get(v, ()):
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


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def forbidden_part_imports(graph: dict[str, set[str]], allowed: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(module, imported module) pairs that cross from one part to a part it may not import."""
    bad = []
    for module, targets in graph.items():
        mine = part_of(module)
        for target in targets:
            theirs = part_of(target)
            if theirs != mine and (mine not in allowed or theirs not in allowed[mine]):
                bad.append((module, target))
    return sorted(bad)


def test_node_has_no_import_cycle() -> None:
    assert cycles(module_graph(ROOT, "node")) == []


def test_node_parts_import_only_the_parts_below_them() -> None:
    graph = module_graph(ROOT, "node")
    assert {part_of(m) for m in graph} <= set(NODE_PARTS), "a new part of node/ needs its row in NODE_PARTS"
    assert forbidden_part_imports(graph, NODE_PARTS) == []


def test_the_leaves_of_node_import_no_other_part() -> None:
    assert all(NODE_PARTS[leaf] == set() for leaf in LEAVES)


def test_the_structure_check_finds_a_cycle_and_a_forbidden_import(tmp_path: Path) -> None:
    """The checks above, on a small package made to break them."""
    pkg = tmp_path / "node"
    (pkg / "store").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "store" / "__init__.py").write_text("from node.store.a import x\n")
    (pkg / "store" / "a.py").write_text("from .b import y\nx = 1\n")
    (pkg / "store" / "b.py").write_text("def later():\n    from node.store import a\ny = 2\n")
    (pkg / "service.py").write_text("import node.store\n")
    (pkg / "errors.py").write_text("from node.service import thing\n")
    graph = module_graph(tmp_path, "node")
    assert graph["node.store.a"] == {"node.store.b"}  # relative import resolved
    assert cycles(graph) == [["node.store.a", "node.store.b"]]  # through a function-level import
    assert forbidden_part_imports(graph, NODE_PARTS) == [("node.errors", "node.service")]
