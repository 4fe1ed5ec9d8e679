"""Notifications for a receiver no peer names yet wait, untouched, until one does. A CIZ that loads its million
indicaties before the zorgkantoren join holds a million such rows: they must cost nothing while they wait (no row
read back and rewritten every few minutes), be found by their receiver when it appears or when the node starts,
and end as dead letters when they waited too long."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from contextlib import closing
from typing import Any

import pytest

from node.notify.outbox import WAITING
from node.service import Node
from tests.node.kit import Network, sample

pytestmark = pytest.mark.asyncio


def waiting_row(receiver: str, created_at: int) -> tuple[str, Any, bool]:
    path = f"WlzIndicatie/{uuid.uuid4()}"
    return ("INSERT INTO outbox (notification_id, event_type, receiver_id_type, receiver_id, subjects, created_at, attempts, "
            "next_attempt_at, status, last_error) VALUES (?, 'NIEUWE_INDICATIE_ZORGKANTOOR', 'UZOVI', ?, ?, ?, 0, ?, 'pending', "
            "'no peer with this identifier is known (yet)')",
            (str(uuid.uuid4()), receiver, f'[{{"subject": "{path}"}}]', created_at, WAITING), False)


async def statuses(node: Node) -> list[tuple[str, str]]:
    return sorted((r["receiver_id"], r["status"]) for r in await node.outbox.list())


async def test_rows_for_an_unknown_receiver_are_written_waiting_and_left_alone(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    records = [{**sample("wlzIndicaties", 0), "wlzIndicatieID": str(uuid.uuid4())} for _ in range(300)]
    await ciz.registers.put_many("WlzIndicatie", [(n, None, r) for n, r in enumerate(records)], actor=ciz.actor,
                                 now=ciz.now())
    written = await ciz.outbox.list()
    assert len(written) == 300 and {(r["next_attempt_at"], r["attempts"]) for r in written} == {(WAITING, 0)}
    ciz.outbox.wake()
    await asyncio.sleep(0.3)
    assert await ciz.outbox.list() == written  # nothing read them back to rewrite them


async def test_a_node_that_starts_delivers_what_waited_for_a_peer_it_knows(network: Network) -> None:
    """The node stopped before it made due what waited for a peer that had just appeared (or the rows are older
    than waiting): its start does it."""
    ciz, zk = await network.start("ciz", "zk5151")
    await ciz.store.write([waiting_row("5151", int(time.time())), waiting_row("9999", int(time.time()))])
    home, port = ciz.home, int(ciz.url.rsplit(":", 1)[1])
    await ciz.stop()
    network.nodes.pop("ciz")
    restarted = Node(home, port=port, mdns=False, gossip_interval=0)
    await restarted.start()
    network.nodes["ciz"] = restarted
    deadline = time.monotonic() + 10
    while await statuses(restarted) != [("5151", "delivered"), ("9999", "pending")] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert await statuses(restarted) == [("5151", "delivered"), ("9999", "pending")]
    assert [r["event_type"] for r in await zk.inbox.list()] == ["NIEUWE_INDICATIE_ZORGKANTOOR"]


async def test_a_row_that_waited_too_long_ends_as_a_dead_letter(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    now = int(time.time())
    await ciz.store.write([waiting_row("1111", now - int(ciz.outbox.dead_after) - 10), waiting_row("2222", now - 10)])
    await ciz.outbox.end_waiting(now)
    assert await statuses(ciz) == [("1111", "dead"), ("2222", "pending")]


async def test_what_waits_for_a_receiver_is_found_through_its_indexes(network: Network) -> None:
    """peer_back (every announcement a node takes), wake_known (every start) and a probe's outcome find a
    receiver's rows through the receiver indexes: never by reading every pending row."""
    (ciz,) = await network.start("ciz")
    identifiers = [("uzovi", "5151"), ("kvk", "12345678")]
    with closing(sqlite3.connect(ciz.home.database_path)) as db, db:
        for waiting_only in (False, True):  # peer_back's, wake_known's
            sql, args, _ = ciz.outbox._due_now("did:key:z6Mk", identifiers, waiting_only=waiting_only)
            plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", args)]
            assert not any(step.startswith("SCAN") for step in plan), plan
            assert sum("outbox_by_receiver" in step for step in plan) == 3, plan
