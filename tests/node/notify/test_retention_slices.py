"""Retention of notifications: what was delivered, or acted on, longer ago than the retention period goes, a slice
at a time."""

from __future__ import annotations

from typing import Any

import pytest

from tests.node.kit import Network, indicatie, put_indicaties

pytestmark = pytest.mark.asyncio


async def test_retention_removes_old_notifications_a_slice_at_a_time(
        network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """A retention run that removes a million notifications does it in commits of a few thousand, so that the
    writes (and the replies waiting for their audit entries) of everyone else get in between."""
    import node.store.database as database
    monkeypatch.setattr(database, "DELETE_SLICE", 2)
    ciz, zk = await network.start("ciz", "zk5151")
    await put_indicaties(ciz, [indicatie("5151") for _ in range(5)])
    await network.settle()
    later = ciz.now() + 365 * 24 * 3600
    for node, forget, table in ((ciz, ciz.outbox.forget_delivered, "outbox"), (zk, zk.inbox.forget_done, "inbox")):
        writes: list[Any] = []
        write = node.store.write
        monkeypatch.setattr(node.store, "write", lambda statements, write=write, writes=writes: writes.append(
            statements) or write(statements))
        assert await forget(later) == 5
        assert sum(f"DELETE FROM {table}" in sql for statements in writes for sql, _, _ in statements) == 3
        assert await node.store.fetchall(f"SELECT count(*) FROM {table}") == [(0,)]
