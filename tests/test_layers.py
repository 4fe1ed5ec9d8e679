"""The architecture as tests: layers point one way, keys/ and protocol/ do no I/O and read no clock, mypy strict passes."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_PURE = {"asyncio", "aiohttp", "aiosqlite", "sqlite3", "socket", "zeroconf", "time", "datetime", "node"}
FORBIDDEN_IN_KEYS = FORBIDDEN_IN_PURE | {"protocol"}


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
