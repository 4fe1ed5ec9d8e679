"""Nothing a request or a timer does reads a table that grows with history or traffic.

Two nodes answer queries, deliver notifications and fetch them back, and run every housekeeping job; each statement
their stores ran is then planned by SQLite against the same schema. A statement that reads one of the growing tables
whole (records, their keys, the audit chain, the outbox and inbox, the replay ids, held evidence) fails the test,
unless it reads a bounded end of it (named below, with why).
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from typing import Any

import pytest

from node.service import Node
from tests.node.kit import Network, indicatie, put_indicaties

pytestmark = pytest.mark.asyncio

GROWING = {"records", "record_keys", "audit", "outbox", "inbox", "replay", "evidence", "authority_links", "meldingen",
           "meldingen_sent", "witness_receipts"}
BOUNDED = {
    # the audit chain's head: read from its end, LIMIT n
    "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT",
    # forgetting replay ids: read from the front up to the first id still inside its window
    "SELECT rowid FROM replay WHERE forget_after >=",
}
# Partial indexes that hold only what waits or was given up (pending and dead notifications, what the inbox has yet to
# act on): reading one whole costs what an undelivered backlog is, never the history (/metrics counts them).
WAITING_ONLY = {"outbox_due", "outbox_dead", "inbox_to_act", "inbox_waiting_by_sender"}


def _bounded(sql: str, step: str) -> bool:
    index = re.search(r"USING (?:COVERING )?INDEX (\w+)", step)
    if index and index.group(1) in WAITING_ONLY:
        return True
    # a page of a list, newest first, from the end of an index: as long as the page, not the table
    return bool(index) and " WHERE " not in sql and re.search(r"ORDER BY \w+ DESC.* LIMIT", sql) is not None


async def _traced(node: Node, statements: list[str]) -> None:
    await node.store.db.set_trace_callback(statements.append)
    reader = node.store._reader
    if reader is not None:
        reader.set_trace_callback(statements.append)
    read_aside = node.store.read_aside  # a connection of its own per read (the outbox's counts)

    async def traced_aside(sql: str, params: Any = ()) -> Any:
        statements.append(sql)
        return await read_aside(sql, params)

    node.store.read_aside = traced_aside  # type: ignore[method-assign]


def _whole_table_reads(database: Any, statements: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    with closing(sqlite3.connect(database)) as db, db:
        for sql in dict.fromkeys(" ".join(s.split()) for s in statements):
            if not re.match(r"(?i)(SELECT|WITH|UPDATE|DELETE|INSERT)\b", sql) or any(b in sql for b in BOUNDED):
                continue
            try:
                plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]
            except sqlite3.Error:
                continue  # a statement of the test's own helpers, say, with a temp table
            for step in plan:
                scanned = re.match(r"SCAN (\w+)", step)
                if scanned and scanned.group(1) in GROWING and not _bounded(sql, step):
                    found.setdefault(sql[:300], []).append(step)
    return found


async def test_requests_notifications_and_housekeeping_read_no_growing_table_whole(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    statements: list[str] = []
    for node in (ciz, zk):
        await _traced(node, statements)
    await put_indicaties(ciz, [indicatie("5151") for _ in range(20)])  # notified, fetched back (queries)
    await network.settle()
    with closing(sqlite3.connect(zk.home.database_path)) as db, db:
        assert db.execute("SELECT count(*) FROM inbox WHERE status = 'fetched'").fetchone() == (20,)
    for node in (ciz, zk):
        now = node.now()
        await node.dispatcher.forget_old_ids(now)
        await node.inbox.retry_failed()
        await node.outbox.end_waiting(now)
        await node.inbox.refresh_evidence(now=now, margin=7 * 24 * 3600)
        await node.subscriptions.ask_after_machtigingen(now)
        await node.end_subscriptions_of_ended_certificates()
        await node.outbox.deliver_due()
        await node.outbox.stats()
        await node.purge()
        await node.registers.sign_unsigned()
    trace_end = len(statements)
    assert trace_end > 100
    for node, database in ((ciz, ciz.home.database_path), (zk, zk.home.database_path)):
        found = _whole_table_reads(database, statements[:trace_end])
        assert found == {}, "\n".join(f"{k}: {v}" for k, v in found.items())


OPERATOR_PAGES = ["/admin/v1/node", "/admin/v1/uitleg", "/admin/v1/search?q=106658037", "/admin/v1/records/WlzIndicatie",
                  "/admin/v1/records/WlzIndicatie/{id}?history=1", "/admin/v1/records/WlzIndicatie/{id}/readers",
                  "/admin/v1/audit?limit=50&newest=1", "/admin/v1/audit/verify", "/admin/v1/outbox?status=pending",
                  "/admin/v1/outbox?status=dead",
                  "/admin/v1/outbox", "/admin/v1/outbox/stats", "/admin/v1/inbox", "/admin/v1/subscriptions",
                  "/admin/v1/meldingen", "/admin/v1/meldingen?state=overdue", "/admin/v1/meldingen/sent",
                  "/admin/v1/peers", "/admin/v1/users"]
CLIENT_PAGES = ["/admin/v1/client/overview?seen=1", "/admin/v1/client/access-log", "/admin/v1/client/consents",
                "/admin/v1/meldingen/sent"]


async def test_the_operators_and_the_clients_pages_read_no_growing_table_whole(network: Network) -> None:
    """What the web interfaces ask for every few seconds (the operator's beheer page, the client's own page) and a
    Prometheus scrape of /metrics: each statement through an index, or a bounded end of a table."""
    import aiohttp
    ciz, zk, client = await network.start("ciz", "zk5151", "client")
    records = [indicatie("5151") for _ in range(5)]
    await put_indicaties(ciz, records)
    await network.settle()
    statements: list[str] = []
    for node in (ciz, zk, client):
        await _traced(node, statements)
    record_id = records[0]["wlzIndicatieID"]
    async with aiohttp.ClientSession() as http:
        for node, pages in ((ciz, OPERATOR_PAGES), (zk, OPERATOR_PAGES), (client, CLIENT_PAGES)):
            headers = {"Authorization": f"Bearer {node.home.admin_token()}"}
            for page in pages:
                async with http.get(node.admin_url + page.format(id=record_id), headers=headers) as r:
                    # a zorgkantoor holds the indicatie as evidence, not in a register of its own: not found
                    assert r.status == 200 or ("{id}" in page and node is zk and r.status == 404), (page, r.status)
            async with http.get(node.url + "/metrics") as r:
                assert r.status == 200
    trace_end = len(statements)
    assert trace_end > 50
    for node in (ciz, zk, client):
        found = _whole_table_reads(node.home.database_path, statements[:trace_end])
        assert found == {}, "\n".join(f"{k}: {v}" for k, v in found.items())
