"""An audit entry keeps the requester's signed request for ``audit_request_days`` (90), then its SHA-256 only.

The chain hashes a request by its SHA-256 either way: after the bytes go, the chain verifies from its first entry,
every entry still names its request by the same hash, and what a client is shown of who looked does not change.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import cbor2
import pytest
from pycose.keys.curves import Ed25519
from pycose.keys.okp import OKPKey
from pycose.messages import Sign1Message

import node.store.audit as audit_module
from keys import Identity
from node.errors import ConfigError
from node.cli import main
from node.home import NodeConfig
from node.store import Actor, AuditLog, Store
from tests.node.kit import Network, sample

pytestmark = pytest.mark.asyncio

ASKER = Actor("did:key:z6Mkasker", "zorgkantoor", "Zorgkantoor Noord")
DAY = 24 * 3600
T0 = 1_790_000_000


def stored(path: Path) -> list[tuple[int, bytes | None, bytes | None]]:
    with closing(sqlite3.connect(path)) as db, db:
        return [(seq, bytes(r) if r else None, bytes(h) if h else None)
                for seq, r, h in db.execute("SELECT seq, r.request, a.request_sha256 FROM audit a "
                                            "LEFT JOIN audit_requests r USING (seq) ORDER BY seq")]


async def write_queries(audit: AuditLog, store: Store, requests: list[bytes], now: float) -> None:
    for request in requests:  # a query that showed two records: two entries of one request
        await store.write([audit.entry(now=now, event="query QIR-0003-ZK", action="R", result="allowed", actor=ASKER,
                                       subject="106658037", record=f"WlzIndicatie/{n}", request=request) for n in range(2)])


async def test_requests_older_than_the_window_keep_their_hash_and_the_chain_verifies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_module, "_FORGET_SLICE", 3)  # several slices, one ending inside a request's entries
    path = tmp_path / "node.sqlite3"
    old = [b"\xd2old signed query %d " % i * 40 for i in range(4)]
    recent = [b"\xd2recent signed query " * 40]
    async with Store(path) as store:
        audit = AuditLog(store, Identity.from_seed(b"\x01" * 32))
        await audit.load()
        await write_queries(audit, store, old, T0)
        await write_queries(audit, store, recent, T0 + 100 * DAY)
        shown_before = [e.public() for e in await audit.entries()]
        rows_before = stored(path)

        digests = [hashlib.sha256(r).digest() for r in old + recent]
        assert [row[1:] for row in rows_before] == [(r, d) for r, d in zip(old + recent, digests) for r in (r, None)]

        # Each entry leads to its request, the second of a pair through the first.
        assert [await audit.signed_request(seq) for seq in (1, 2, 10)] == [
            (old[0], digests[0]), (old[0], digests[0]), (recent[0], digests[4])]

        # What would go, counted; nothing changes.
        assert await audit.forget_requests(T0 + 10 * DAY, dry_run=True) == 4
        assert stored(path) == rows_before

        assert await audit.forget_requests(T0 + 10 * DAY) == 4
        rows = stored(path)
        assert rows[:8] == [(n + 1, None, digests[n // 2]) for n in range(8)]  # bytes gone, each entry's hash kept
        assert rows[8:] == rows_before[8:] and rows[8][1] == recent[0]  # the recent request whole
        assert [e.public() for e in await audit.entries()] == shown_before
        assert await audit.verify(full=True) == (True, 10, "chain intact")
        assert await audit.signed_request(2) == (None, digests[0])

        # A later run starts where this one stopped, and the recent request goes once it is old enough.
        assert await audit.forget_requests(T0 + 10 * DAY) == 0
        assert await audit.forget_requests(T0 + 101 * DAY) == 1
        assert all(request is None for _, request, _ in stored(path))
        with closing(sqlite3.connect(path)) as db, db:
            assert db.execute("SELECT count(*) FROM audit_requests").fetchone() == (0,)
        assert await audit.verify(full=True) == (True, 10, "chain intact")

    # The hash kept is what the chain checks: changing it is caught.
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE audit SET request_sha256 = ? WHERE seq = 1", (hashlib.sha256(b"another").digest(),))
    async with Store(path) as store:
        intact, _, detail = await AuditLog(store, Identity.from_seed(b"\x01" * 32)).verify(full=True)
    assert not intact and "entry 1 was changed" in detail


@pytest.mark.parametrize("swapped", [
    "UPDATE audit_requests SET request = (SELECT request FROM audit_requests WHERE seq = 3) WHERE seq = 1",
    "UPDATE audit SET request_sha256 = (SELECT request_sha256 FROM audit WHERE seq = 3) WHERE seq = 1"])
async def test_a_kept_request_swapped_for_another_is_caught(tmp_path: Path, swapped: str) -> None:
    """Whoever holds the file could put another signed request (another member's, say) beside an entry, or its
    hash, to make it look as if that member had asked: the chain holds the hash, and the bytes kept must match it."""
    path = tmp_path / "node.sqlite3"
    async with Store(path) as store:
        audit = AuditLog(store, Identity.from_seed(b"\x01" * 32))
        await audit.load()
        await write_queries(audit, store, [b"\xd2one member's query " * 40, b"\xd2another member's query " * 40], T0)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(swapped)
    async with Store(path) as store:
        intact, _, detail = await AuditLog(store, Identity.from_seed(b"\x01" * 32)).verify(full=True)
    assert not intact and "entry 1 was changed" in detail


async def test_the_node_keeps_requests_by_hash_after_the_window(network: Network, capsys: Any) -> None:
    ciz, zk = await network.start("ciz", "zk5151", audit_request_days=0)
    indicatie = "31835d1d-3933-4ffe-9f57-8985f41fae4a"
    await ciz.registers.put("WlzIndicatie", sample("wlzIndicaties", 0), actor=ciz.actor, now=ciz.now())
    await network.settle()  # the zorgkantoor was told, and fetched the indicatie back: one query
    for _ in range(3):
        await zk.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": indicatie, "uzovi": "5151"}, [])
    asked = [e for e in await ciz.audit.entries(limit=1000) if e.event.startswith("query")]
    assert len(asked) == 4 and all(e.request for e in asked)
    bsn = asked[0].subject
    seen_before = [e.public() for e in await ciz.audit.entries(subject=bsn, limit=1000)]

    # For a dispute: the operator takes out the signed request an entry names; it verifies with the requester's key.
    proof = ciz.home.path.parent / "proof.cose"
    assert await asyncio.to_thread(main, ["audit", str(ciz.home.path), "--request", str(asked[-1].seq),
                                          "--out", str(proof), "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said["request_sha256"] == asked[-1].public()["request_sha256"] == hashlib.sha256(proof.read_bytes()).hexdigest()
    assert proof.stat().st_mode & 0o777 == 0o600  # sealed, but personal data all the same
    tagged = cbor2.loads(proof.read_bytes())
    message = Sign1Message.from_cose_obj([tagged.value[0], dict(tagged.value[1]), *tagged.value[2:]],
                                         allow_unknown_attributes=True)
    message.key = OKPKey(crv=Ed25519, x=zk.identity.public_key)
    assert tagged.tag == 18 and message.verify_signature()
    await asyncio.sleep(1.05)  # the window is 0 days: all written before this (whole) second has passed it

    assert await asyncio.to_thread(main, ["purge", str(ciz.home.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["requests"] == 4
    with closing(sqlite3.connect(ciz.home.database_path)) as db, db:
        assert db.execute("SELECT count(*) FROM audit WHERE request IS NOT NULL").fetchone() == (0,)
    assert [e.public() for e in await ciz.audit.entries(subject=bsn, limit=1000)] == seen_before
    [said] = [e for e in await ciz.audit.entries(limit=1000) if e.event == "request.purge"]
    assert said.result == "4 kept by their hash only" and said.subject is None
    assert (await ciz.audit.verify(full=True))[0]
    assert await asyncio.to_thread(main, ["audit", str(ciz.home.path), "--request", str(asked[-1].seq),
                                          "--out", str(proof)]) != 0
    assert "by its SHA-256 only" in capsys.readouterr().err


@pytest.mark.parametrize("days", [-1, "90", 1.5])
async def test_a_window_that_is_not_whole_days_is_refused(days: Any) -> None:
    config = NodeConfig(role="ciz", name="CIZ", identifiers={"kvk": "62253778"}).to_json()
    with pytest.raises(ConfigError, match="audit_request_days"):
        NodeConfig.from_json(config | {"audit_request_days": days})
    assert NodeConfig.from_json(config | {"audit_request_days": None}).audit_request_days is None
