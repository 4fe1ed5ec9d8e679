"""A backlog larger than what the outbox starts at once: deliveries in flight stay bounded (a million waiting rows
must not become a million tasks), each pass reads only what it can start, and every notification arrives once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import node.notify.outbox as outbox_module
from node.notify.outbox import Outbox
from node.service import Node
from tests.node.kit import BlackHole, Network, indicatie, put_indicaties

pytestmark = pytest.mark.asyncio

BACKLOG = 300
AT_ONCE = 20


def _indicaties(count: int, zorgkantoor: str) -> list[dict[str, Any]]:
    return [indicatie(zorgkantoor) for _ in range(count)]


async def _one_pass_for(ciz: Node, zk: Node, count: int) -> None:
    """``count`` notifications for the zorgkantoor, addressed to its did, and nothing else pending: one delivery pass."""
    await ciz.store.write([("UPDATE outbox SET status = 'delivered' WHERE status = 'pending'", (), False)])
    await ciz.store.write([ciz.outbox._insert(p, ciz.now()) for r in _indicaties(count, "5151") for p in [
        outbox_module.Planned("NIEUWE_INDICATIE_ZORGKANTOOR", "UZOVI", "5151", f"WlzIndicatie/{r['wlzIndicatieID']}",
                              f"WlzIndicatie/{r['wlzIndicatieID']}", receiver_did=zk.identity.did)]])
    await ciz.outbox.deliver_due()
    await ciz.outbox.settled()


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
    await put_indicaties(ciz, _indicaties(BACKLOG, "5151"))
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


async def test_while_deliveries_are_under_way_the_outbox_is_not_read_again_and_again(
        network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    passes = [0]
    deliver_due, deliver = Outbox.deliver_due, Outbox._deliver_batch

    async def counting_pass(self: Outbox) -> float:
        passes[0] += 1
        return await deliver_due(self)

    async def slow_receiver(self: Outbox, rows: list[dict[str, Any]], did: str) -> Any:
        await asyncio.sleep(0.5)
        return await deliver(self, rows, did)

    monkeypatch.setattr(Outbox, "deliver_due", counting_pass)
    monkeypatch.setattr(Outbox, "_deliver_batch", slow_receiver)
    ciz, zk = await network.start("ciz", "zk5151")
    await put_indicaties(ciz, _indicaties(200, "5151"))
    await network.settle(timeout=60)
    assert ciz.outbox.delivered_since_start == 200
    # Four messages (64 to a receiver that has not answered yet, then the rest), each half a second under way: a
    # pass when the records were stored, one when each message ended, and a few on timers. Passes that found only
    # what is in flight made 800 reads in those two seconds.
    assert passes[0] <= 12, passes[0]


async def test_a_receiver_with_a_large_backlog_gets_full_messages_and_at_most_its_share_in_flight(
        network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    at_receiver: list[int] = []
    sizes: list[int] = []
    deliver = Outbox._deliver_batch

    async def measuring(self: Outbox, rows: list[dict[str, Any]], did: str) -> Any:
        sizes.append(len(rows))
        at_receiver.append(self._flying[did])
        await asyncio.sleep(0.05)
        return await deliver(self, rows, did)

    monkeypatch.setattr(Outbox, "_deliver_batch", measuring)
    ciz, zk = await network.start("ciz", "zk5151")
    await put_indicaties(ciz, _indicaties(2, "5151"))  # it answers once
    await network.settle(timeout=30)
    sizes.clear()
    await put_indicaties(ciz, _indicaties(1200, "5151"))
    await network.settle(timeout=120)
    rows = await ciz.outbox.list(limit=1300)
    assert len(rows) == 1202 and all(r["status"] == "delivered" and r["attempts"] == 1 for r in rows)
    assert sum(sizes) == 1200 and sizes.count(outbox_module.MAX_BATCH) >= 1200 // outbox_module.MAX_BATCH - 1, sizes
    assert max(at_receiver) == outbox_module.PER_RECEIVER  # eight messages at once, never the whole backlog


async def test_a_receiver_that_swallows_connections_holds_one_message_and_never_holds_up_the_others(
        network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """An attacker (or a broken host) that accepts connections and never answers: each delivery to it waits for the
    client's timeout. What it is sent at once is one message, whatever its backlog, and every other receiver gets
    its notifications meanwhile."""
    ciz, good, silent = await network.start("ciz", "zk5151", "zk5050")
    port = int(silent.url.rsplit(":", 1)[1].split("/")[0])
    await silent.stop()
    del network.nodes["zk5050"]
    hole = BlackHole()
    await hole.start(port)  # until the sender gives up; nothing is ever answered
    try:
        await put_indicaties(ciz, _indicaties(600, "5050") + _indicaties(300, "5151"))
        deadline = time.monotonic() + 8  # under the client's 10-s timeout: the first message to it is still waiting
        delivered: set[str] = set()
        while len(delivered) < 300 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            delivered = {r["notification_id"] for r in await ciz.outbox.list(limit=1000) if r["status"] == "delivered"}
        assert len(delivered) == 300 and ciz.outbox.delivered_since_start == 300
        assert {r["notification_id"] for r in await good.inbox.list(limit=400)} == delivered
        silent_did = next(p.did for p in ciz.peers.all() if p.identifiers.get("uzovi") == "5050")
        assert ciz.outbox._flying[silent_did] == outbox_module.MAX_BATCH and hole.accepted == 1
    finally:
        await hole.close()


async def test_what_waits_for_a_probe_is_due_when_the_probe_got_through_while_a_pass_was_reading(
        network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass decides that the rows of a receiver that is being probed wait for the probe's outcome, then reads the
    rows it starts. If the probe gets through during that read (its outcome makes every row of the receiver due),
    the pass must not then park them for max_delay: they were stuck for 300 s in a 50-receiver benchmark."""
    ciz, zk = await network.start("ciz", "zk5151")
    outbox = ciz.outbox
    await put_indicaties(ciz, _indicaties(3, "5151"))
    await network.settle(timeout=30)
    did = zk.identity.did
    outbox._unreachable[did] = 0.0  # a probe to it is under way
    outbox._probing.add(did)
    await outbox.store.write([("UPDATE outbox SET status = 'pending', next_attempt_at = 0, attempts = 0", (), False)])
    rows = outbox._rows

    async def probe_gets_through_meanwhile(self: Outbox, rowids: list[int]) -> Any:
        [row] = await self.list(limit=1)
        self._probing.discard(did)
        await self.store.write(self._reached(row, did))
        return await rows(rowids)

    monkeypatch.setattr(Outbox, "_rows", probe_gets_through_meanwhile)
    await outbox.deliver_due()
    parked = await outbox.store.fetchall("SELECT count(*) FROM outbox WHERE status = 'pending' AND next_attempt_at > ?",
                                         (time.time(),))
    assert parked[0][0] == 0


async def test_a_receivers_returning_backlog_does_not_hold_up_what_others_get_after_it(
        network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """A receiver that comes back after a while has a backlog older than anything else due. Made due when it is back,
    that backlog queues behind what is due already and what falls due later, instead of in front of it: the other
    receivers' notifications do not wait until it has all gone."""
    monkeypatch.setattr(outbox_module, "BATCH", 64)  # a window of 64 rows, 16 of them to one receiver at most
    monkeypatch.setattr(outbox_module, "PER_RECEIVER", 16)
    ciz, other = await network.start("ciz", "zk5050")
    await put_indicaties(ciz, _indicaties(300, "5151"))  # for a receiver no peer names yet: they wait for it
    deliver = Outbox._deliver_batch
    slow: set[str] = set()

    async def slow_for_the_returning_one(self: Outbox, rows: list[dict[str, Any]], did: str) -> Any:
        if did in slow:
            await asyncio.sleep(0.3)
        return await deliver(self, rows, did)

    monkeypatch.setattr(Outbox, "_deliver_batch", slow_for_the_returning_one)
    [returning] = await network.start("zk5151")
    slow.add(returning.identity.did)
    for _ in range(40):  # it answered once: the whole backlog is due, 16 at a time
        if ciz.outbox._answered.issuperset(slow):
            break
        await asyncio.sleep(0.05)
    fresh = _indicaties(5, "5050")
    await put_indicaties(ciz, fresh)
    deadline = time.monotonic() + 3
    while len(await other.inbox.list()) < 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert len(await other.inbox.list()) == 5
    pending = await ciz.outbox.stats()
    assert pending["pending"] >= 150  # the backlog is still being worked through


async def test_a_receiver_revoked_while_a_pass_was_reading_is_not_sent_what_the_pass_had_chosen(
        network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass chooses on the rows' addresses, then reads the rows it starts: a revocation that ends what waits for
    the receiver in between must stop those rows, not be overwritten by their delivery."""
    ciz, zk = await network.start("ciz", "zk5151")
    rows = Outbox._rows

    async def revoked_meanwhile(self: Outbox, rowids: list[int]) -> Any:
        await self.store.write([Outbox.stop_for([zk.identity.did])])
        return await rows(self, rowids)

    monkeypatch.setattr(Outbox, "_rows", revoked_meanwhile)
    await _one_pass_for(ciz, zk, 3)
    stored = await ciz.store.fetchall("SELECT status FROM outbox WHERE receiver_did = ?", (zk.identity.did,))
    assert [s for (s,) in stored] == ["dead"] * 3
    assert await zk.inbox.list() == []


async def test_a_receiver_revoked_while_an_attempt_was_under_way_stays_stopped_when_the_attempt_fails(
        network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """The attempt's failure wrote the row back as pending over the revocation's dead letter: a revoked receiver (a
    stolen key) was sent it again later. A row stopped meanwhile now stays stopped."""
    from node.errors import NetworkError

    ciz, zk = await network.start("ciz", "zk5151")

    async def revoked_while_sending(*args: Any, **kwargs: Any) -> Any:
        await ciz.store.write([Outbox.stop_for([zk.identity.did])])
        raise NetworkError("connection reset")

    monkeypatch.setattr(ciz.client, "request", revoked_while_sending)
    await _one_pass_for(ciz, zk, 1)
    stored = await ciz.store.fetchall("SELECT status, last_error FROM outbox WHERE receiver_did = ?", (zk.identity.did,))
    assert stored == [("dead", "the receiver was revoked")]


async def test_a_receiver_with_more_due_than_a_pass_reads_does_not_hold_up_the_others(
        network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """An import for one zorgkantoor leaves more rows due for it than a pass reads, all due before what anyone else
    gets next. A pass that finds its window full of rows for receivers without room looks past them, receiver by
    receiver: the others' notifications go out while that backlog is still being worked through."""
    monkeypatch.setattr(outbox_module, "BATCH", 64)  # a window of 64 rows; 16 in flight to one receiver at most
    monkeypatch.setattr(outbox_module, "PER_RECEIVER", 16)
    monkeypatch.setattr(outbox_module, "MAX_BATCH", 8)
    ciz, busy, other = await network.start("ciz", "zk5151", "zk5050")
    deliver = Outbox._deliver_batch

    async def slow_for_the_busy_one(self: Outbox, rows: list[dict[str, Any]], did: str) -> Any:
        if did == busy.identity.did:
            await asyncio.sleep(0.3)
        return await deliver(self, rows, did)

    monkeypatch.setattr(Outbox, "_deliver_batch", slow_for_the_busy_one)
    await put_indicaties(ciz, _indicaties(400, "5151"))
    await put_indicaties(ciz, _indicaties(5, "5050"))
    deadline = time.monotonic() + 3
    while len(await other.inbox.list()) < 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert len(await other.inbox.list()) == 5
    assert (await ciz.outbox.stats())["pending"] >= 250  # the backlog is still being worked through
    assert max(ciz.outbox._flying.values(), default=0) <= 16
    await network.settle(timeout=60)
    delivered = await ciz.store.fetchall("SELECT count(*), sum(attempts) FROM outbox WHERE status = 'delivered'")
    assert delivered == [(405, 405)]  # every one of them once, none tried twice
    assert len(await busy.inbox.list(limit=1000)) == 400
