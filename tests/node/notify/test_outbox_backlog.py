"""A backlog larger than what the outbox starts at once: deliveries in flight stay bounded (a million waiting rows
must not become a million tasks), each pass reads only what it can start, and every notification arrives once."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

import node.notify.outbox as outbox_module
from node.notify.outbox import Outbox
from tests.node.kit import Network, sample

pytestmark = pytest.mark.asyncio

BACKLOG = 300
AT_ONCE = 20


async def test_a_large_backlog_is_delivered_once_with_bounded_work(network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_module, "BATCH", AT_ONCE)
    in_flight: list[int] = []
    parsed = [0]
    deliver, row = Outbox._deliver_batch, outbox_module._row
    sizes: list[int] = []

    async def counting_deliver(self: Outbox, rows: list[dict[str, Any]], did: str) -> Any:
        in_flight.append(len(self._in_flight))
        sizes.append(len(rows))
        await asyncio.sleep(0.002)  # a receiver that takes a moment: deliveries overlap
        return await deliver(self, rows, did)

    def counting_row(r: Any) -> dict[str, Any]:
        parsed[0] += 1
        return row(r)

    monkeypatch.setattr(Outbox, "_deliver_batch", counting_deliver)
    monkeypatch.setattr(outbox_module, "_row", counting_row)

    ciz, zk = await network.start("ciz", "zk5151")
    records = [{**sample("wlzIndicaties", 0), "wlzIndicatieID": str(uuid.uuid4())} for _ in range(BACKLOG)]
    result = await ciz.registers.put_many("WlzIndicatie", [(n, None, r) for n, r in enumerate(records)],
                                          actor=ciz.actor, now=ciz.now())
    assert result.created == BACKLOG
    deadline = time.monotonic() + 60
    while ciz.outbox.delivered_since_start < BACKLOG and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await ciz.outbox.settled()

    rows = await ciz.outbox.list(limit=BACKLOG + 10)
    assert len(rows) == BACKLOG and all(r["status"] == "delivered" and r["attempts"] == 1 for r in rows)
    received = await zk.inbox.list(limit=BACKLOG + 10)
    assert sorted(r["notification_id"] for r in received) == sorted(r["notification_id"] for r in rows)
    assert max(in_flight) <= AT_ONCE
    # They went in batches, each as large as the room allowed: far fewer messages than notifications.
    assert sum(sizes) == BACKLOG and len(sizes) <= BACKLOG // (AT_ONCE // 2), sizes
    # Every row is read as a candidate about once: a pass skips what is in flight without decoding it.
    assert parsed[0] <= 2 * BACKLOG, parsed[0]
