from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tests.node.kit import Network


@pytest_asyncio.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    net = Network(tmp_path)
    yield net
    await net.stop()
