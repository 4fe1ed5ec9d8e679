"""The outbox's counts for /metrics and the operator's page: read beside the writer, never on its thread."""

from __future__ import annotations

import aiohttp
import pytest

from tests.node.kit import Network, indicatie, put_indicaties

pytestmark = pytest.mark.asyncio


async def test_counting_what_waits_never_holds_the_writer(network: Network) -> None:
    """A scrape of /metrics (and the beheer page, every few seconds) counts the notifications that wait and those
    given up. With a backlog of a million that count takes tens of milliseconds; on the writer's thread every
    commit, and every reply waiting for its audit entry, would wait behind it."""
    ciz, zk = await network.start("ciz", "zk5151")
    await zk.stop()  # what is sent to it now waits
    await put_indicaties(ciz, [indicatie("5151") for _ in range(7)])
    await ciz.store.write([("UPDATE outbox SET status = 'dead' WHERE rowid IN (SELECT rowid FROM outbox LIMIT 2)", (), False)])
    on_writer: list[str] = []
    await ciz.store.db.set_trace_callback(on_writer.append)  # the writer's connection
    try:
        stats = await ciz.outbox.stats()
        async with aiohttp.ClientSession() as http, http.get(f"{ciz.url}/metrics") as response:
            scraped = await response.text()
    finally:
        await ciz.store.db.set_trace_callback(None)
    assert (stats["pending"], stats["dead"]) == (5, 2)
    assert 'iwlz_outbox_notifications{status="pending"} 5.0' in scraped
    assert 'iwlz_outbox_notifications{status="dead"} 2.0' in scraped
    assert [sql for sql in on_writer if "count(*) FROM outbox" in sql] == []
