"""Nothing a request or a timer does reads a table that grows with history or traffic.

Two nodes answer queries, deliver notifications and fetch them back, and run every housekeeping job; each statement
their stores ran is then planned by SQLite against the same schema. A statement that reads one of the growing tables
whole (records, their keys, the audit chain, the outbox and inbox, the replay ids, held evidence) fails the test,
unless it reads a bounded end of it (named below, with why).
"""

from __future__ import annotations

import re
import sqlite3
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
    # /metrics and the outbox's stats count what waits and what was given up, in the partial indexes that hold only
    # those rows: the cost follows an undelivered backlog, never the delivered history
    "SELECT count(*) FROM outbox WHERE status = 'pending'",
    "SELECT count(*) FROM outbox WHERE status = 'dead'",
}


async def _traced(node: Node, statements: list[str]) -> None:
    await node.store.db.set_trace_callback(statements.append)
    reader = node.store._reader
    if reader is not None:
        reader.set_trace_callback(statements.append)


def _whole_table_reads(database: Any, statements: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    with sqlite3.connect(database) as db:
        for sql in dict.fromkeys(" ".join(s.split()) for s in statements):
            if not re.match(r"(?i)(SELECT|WITH|UPDATE|DELETE|INSERT)\b", sql) or any(b in sql for b in BOUNDED):
                continue
            try:
                plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]
            except sqlite3.Error:
                continue  # a statement of the test's own helpers, say, with a temp table
            for step in plan:
                scanned = re.match(r"SCAN (\w+)", step)
                if scanned and scanned.group(1) in GROWING:
                    found.setdefault(sql[:300], []).append(step)
    return found


async def test_requests_notifications_and_housekeeping_read_no_growing_table_whole(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    statements: list[str] = []
    for node in (ciz, zk):
        await _traced(node, statements)
    await put_indicaties(ciz, [indicatie("5151") for _ in range(20)])  # notified, fetched back (queries)
    await network.settle()
    with sqlite3.connect(zk.home.database_path) as db:
        assert db.execute("SELECT count(*) FROM inbox WHERE status = 'fetched'").fetchone() == (20,)
    for node in (ciz, zk):
        now = node.now()
        await node.dispatcher.forget_old_ids(now)
        await node.inbox.retry_failed()
        await node.outbox.end_waiting(now)
        await node.inbox.refresh_evidence(now=now, margin=7 * 24 * 3600)
        await node.outbox.deliver_due()
        await node.outbox.stats()
        await node.purge()
        await node.registers.sign_unsigned()
    trace_end = len(statements)
    assert trace_end > 100
    for node, database in ((ciz, ciz.home.database_path), (zk, zk.home.database_path)):
        found = _whole_table_reads(database, statements[:trace_end])
        assert found == {}, "\n".join(f"{k}: {v}" for k, v in found.items())
