"""The hardening suite: the short form runs with every test run; IWLZ_LONG=1 runs the long form too
(100,000 fuzz inputs, a 60-second partition, a 10-minute soak), whose figures are printed."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.node.kit import Network

LONG = os.environ.get("IWLZ_LONG") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.hardening)


def long_only() -> pytest.MarkDecorator:
    return pytest.mark.skipif(not LONG, reason="long form: run with IWLZ_LONG=1")


@pytest_asyncio.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    net = Network(tmp_path)
    yield net
    await net.stop()
