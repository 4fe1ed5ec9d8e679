"""A worker process whose start fails ends, as the node does: what it opened is closed again."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from node.errors import StorageError
from node.store.changes import ChangeCount
from node.worker import QueryWorker
from tests.node.kit import Network

pytestmark = pytest.mark.asyncio


def _store_threads() -> int:
    return sum(1 for t in threading.enumerate() if "_connection_worker_thread" in t.name and t.is_alive())


async def test_a_worker_whose_start_fails_closes_what_it_opened(network: Network, tmp_path: Path) -> None:
    """Here its owner cannot be reached once its store is open. Before, the store kept a thread that kept the
    process from ending; its owner waited for it until its start timeout and then killed it."""
    (ciz,) = await network.start("ciz")
    await ciz.stop()
    network.nodes.pop("ciz")
    changes = tmp_path / "changes"
    ChangeCount(changes, writer=True).close()
    before = _store_threads()
    worker = QueryWorker(ciz.home, ciz.home.config(), host="127.0.0.1", port=0,
                         socket_path=str(tmp_path / "no-owner.sock"), changes_path=str(changes))
    with pytest.raises(StorageError, match="owner process cannot be reached"):
        await worker.start()
    for _ in range(100):  # the store's thread ends right after its close is answered
        if _store_threads() == before:
            break
        await asyncio.sleep(0.05)
    assert _store_threads() == before


async def test_the_error_that_stopped_a_start_is_the_one_reported_also_when_undoing_fails(
        caplog: pytest.LogCaptureFixture) -> None:
    from node.tasks import start_or_undo

    undone: list[bool] = []

    async def start() -> None:
        raise StorageError("the store could not be opened")

    async def undo() -> None:
        undone.append(True)
        raise RuntimeError("half-made part")

    with pytest.raises(StorageError, match="could not be opened"):
        await start_or_undo(start, undo)
    assert undone == [True]
    assert "stopping what had started failed too: RuntimeError" in caplog.text
