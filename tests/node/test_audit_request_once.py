"""The entries one request makes (a query that shows several records) keep its signed bytes once (beside the
first, in audit_requests) and every one its SHA-256. The chain hashes the same either way, so it verifies, a
changed hash is caught, and every entry still shows which request it was."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from keys import Identity
from node.store import Actor, AuditLog, Store

pytestmark = pytest.mark.asyncio

ASKER = Actor("did:key:z6Mkasker", "zorgkantoor", "Zorgkantoor Noord")


async def test_a_request_shown_three_records_is_kept_once(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite3"
    request, other = b"\xd2signed query " * 90, b"\xd2another query " * 90
    async with Store(path) as store:
        audit = AuditLog(store, Identity.from_seed(b"\x01" * 32))
        await audit.load()
        await store.write([audit.entry(now=1_790_000_000, event="query QIR-0003-ZK", action="R", result="allowed",
                                       actor=ASKER, subject="106658037", record=f"WlzIndicatie/{n}", request=request)
                           for n in range(3)]
                          + [audit.entry(now=1_790_000_000, event="query QIR-0003-ZK", action="R", result="allowed",
                                         actor=ASKER, subject="106658037", record="WlzIndicatie/9", request=other)])
        assert await audit.verify() == (True, 4, "chain intact")
        shown = [e.public() for e in await audit.entries()]
    assert [s["request_sha256"] for s in shown] == [hashlib.sha256(request).hexdigest()] * 3 + [
        hashlib.sha256(other).hexdigest()]
    with closing(sqlite3.connect(path)) as db, db:
        stored = db.execute("SELECT r.request, a.request_sha256 FROM audit a LEFT JOIN audit_requests r USING (seq) "
                            "ORDER BY seq").fetchall()
        assert [bytes(r) if r else None for r, _ in stored] == [request, None, None, other]
        assert [bytes(h) for _, h in stored] == [hashlib.sha256(r).digest() for r in (request, request, request, other)]
        db.execute("UPDATE audit SET request_sha256 = ? WHERE seq = 3", (hashlib.sha256(other).digest(),))
    async with Store(path) as store:
        audit = AuditLog(store, Identity.from_seed(b"\x01" * 32))
        intact, _, detail = await audit.verify(full=True)
    assert not intact and "entry 3 was changed" in detail
