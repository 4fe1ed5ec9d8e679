"""Batched notifications and queries between real nodes on 127.0.0.1: each notification of a batch is checked,
stored and acknowledged as if it came alone, each query decided and audited on its own, and a node that does not
know the batch messages gets the same, one message at a time."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from typing import Any

import pytest

import node.server.queries as queries_module
from node.discovery.routing import _chunks
from node.service import Node
from protocol import Notification, Notifications, Queries, Query, Receipt, Receipts, Subject
from protocol.records import verify_record
from tests.node.kit import Network, indicatie, put_indicaties

pytestmark = pytest.mark.asyncio


def _handled(node: Node, kind: str, outcome: str = "ok") -> int:
    value = node.metrics.registry.get_sample_value("iwlz_requests_total", {"type": kind, "outcome": outcome})
    return int(value or 0)


def _note(record_id: str, *, receiver: str = "5151", sender: str = "62253778") -> Notification:
    path = f"WlzIndicatie/{record_id}"
    return Notification(notification_id=str(uuid.uuid4()), event_type="NIEUWE_INDICATIE_ZORGKANTOOR", timestamp=1,
                        sender_id_type="KVK", sender_id=sender, receiver_id_type="UZOVI", receiver_id=receiver,
                        subscription_id=None, subjects=(Subject(subject=path, record_id=path),))


async def test_each_notification_of_a_batch_is_checked_stored_and_acknowledged_on_its_own(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    record = indicatie()
    await put_indicaties(ciz, [record])
    good = _note(record["wlzIndicatieID"])
    batch = Notifications(notifications=(good, _note(record["wlzIndicatieID"], receiver="5050"),
                                         _note(record["wlzIndicatieID"], sender="12345678")))
    reply = await ciz.client.request(zk.url, batch, to=zk.identity.did)
    assert isinstance(reply.message, Receipts)
    assert [(r.ref, r.status, r.code) for r in reply.message.receipts] == [
        (good.notification_id, "accepted", None), (batch.notifications[1].notification_id, "refused", "wrong-recipient"),
        (batch.notifications[2].notification_id, "refused", "denied")]
    await network.settle()
    sent = {n.notification_id for n in batch.notifications}  # (the source's own outbox sends one of its own too)
    [stored] = [r for r in await zk.inbox.list() if r["notification_id"] in sent]
    assert stored["notification_id"] == good.notification_id and stored["status"] == "fetched"
    received = [e.rule for e in await zk.audit.entries() if e.event.startswith("notification.received")]
    assert good.notification_id in received and not sent - {good.notification_id} & set(received)
    # Sent again (a lost reply): acknowledged as a duplicate, stored once, the refusals the same.
    again = await ciz.client.request(zk.url, batch, to=zk.identity.did)
    assert [r.status for r in again.message.receipts] == ["duplicate", "refused", "refused"]
    assert len([r for r in await zk.inbox.list() if r["notification_id"] in sent]) == 1


async def test_a_backlog_goes_in_batches_and_is_fetched_back_in_batches(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    records = [indicatie() for _ in range(150)]
    await put_indicaties(ciz, records)
    await network.settle(timeout=60)
    rows = await ciz.outbox.list(limit=200)
    assert len(rows) == 150 and all(r["status"] == "delivered" and r["attempts"] == 1 for r in rows)
    received = await zk.inbox.list(limit=200)
    assert sorted(r["notification_id"] for r in received) == sorted(r["notification_id"] for r in rows)
    assert all(r["status"] == "fetched" and r["fetched_version"] == 1 for r in received)
    # Far fewer messages than notifications, each way.
    assert 3 <= _handled(zk, "notifications") + _handled(zk, "notification") <= 20
    assert 3 <= _handled(ciz, "queries") <= 20 and _handled(ciz, "query") <= 5
    # The source audited every record it showed, each under the query that asked for it.
    shown = [e for e in await ciz.audit.entries(limit=2000) if e.event == "query QIR-0001-ZKi" and e.result == "allowed"]
    assert sorted(e.record for e in shown) == sorted(f"WlzIndicatie/{r['wlzIndicatieID']}" for r in records)
    assert (await ciz.audit.verify())[0] and (await zk.audit.verify())[0]


async def test_a_receiver_that_does_not_know_batches_gets_one_notification_per_message(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    del zk.dispatcher._handlers[Notifications]  # as a node of an earlier version
    await put_indicaties(ciz, [indicatie() for _ in range(12)])
    await network.settle(timeout=30)
    rows = await ciz.outbox.list()
    assert len(rows) == 12 and all(r["status"] == "delivered" for r in rows)
    assert _handled(zk, "notifications", "unsupported") == 1 and _handled(zk, "notification") == 12
    assert {r["status"] for r in await zk.inbox.list()} == {"fetched"}


async def test_a_source_that_does_not_know_batches_is_asked_one_query_at_a_time(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    del ciz.dispatcher._handlers[Queries]
    await put_indicaties(ciz, [indicatie() for _ in range(12)])
    await network.settle(timeout=30)
    received = await zk.inbox.list()
    assert len(received) == 12 and {r["status"] for r in received} == {"fetched"}
    assert _handled(ciz, "queries", "unsupported") == 1 and _handled(ciz, "query") == 12


async def test_each_query_of_a_batch_is_decided_and_audited_on_its_own(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    mine, other = indicatie("5151"), indicatie("5050")
    await put_indicaties(ciz, [mine, other])

    def ask(record: dict[str, Any], uzovi: str = "5151") -> Query:
        return Query(template="QIR-0001-ZKi", params={"wlzIndicatieID": record["wlzIndicatieID"], "uzovi": uzovi},
                     evidence=(), history=False)

    batch = Queries(queries=(ask(mine), ask(mine, uzovi="5050"), ask(other), ask(mine)))
    reply = await zk.client.request(ciz.url, batch, to=ciz.identity.did)
    first, refused, empty, last = reply.message.answers
    assert refused.error is not None and refused.error.code == "denied" and refused.records == ()
    assert empty.error is None and empty.records == ()  # another zorgkantoor's indicatie: not shown, as alone
    for answer in (first, last):
        assert answer.error is None and len(answer.records) == 1
        record, signer = verify_record(answer.records[0], zk.trust, zk.now())
        assert record.record_id == mine["wlzIndicatieID"] and signer.did == ciz.identity.did
    # (the zorgkantoor also fetches back what the source notifies it of: those carry another trace)
    entries = [e for e in await ciz.audit.entries() if e.trace_id == reply.envelope.trace_id]
    assert {e.event for e in entries} == {"query QIR-0001-ZKi"}
    assert [(e.result, e.record, e.subject) for e in entries] == [
        ("allowed", f"WlzIndicatie/{mine['wlzIndicatieID']}", mine["client"]["bsn"]),
        ("denied", None, mine["client"]["bsn"]),
        ("empty", None, other["client"]["bsn"]),
        ("allowed", f"WlzIndicatie/{mine['wlzIndicatieID']}", mine["client"]["bsn"])]
    # The signed request is kept once, as evidence of who asked; the others name it by its hash.
    assert sum(1 for e in entries if e.request) == 1 and len({e.public()["request_sha256"] for e in entries}) == 1
    assert (await ciz.audit.verify())[0]


async def test_a_query_whose_answer_does_not_fit_the_batch_is_refused_unaudited_and_asked_alone(
        network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    records = [indicatie() for _ in range(3)]
    await put_indicaties(ciz, records)
    await network.settle()
    monkeypatch.setattr(queries_module, "ANSWERS_LIMIT", 1000)  # one signed indicatie (~1.2 kB) fills it
    asked = [("QIR-0001-ZKi", {"wlzIndicatieID": r["wlzIndicatieID"], "uzovi": "5151"}, []) for r in records]
    batch = Queries(queries=tuple(Query(template=t, params=p, evidence=(), history=False) for t, p, _ in asked))
    reply = await zk.client.request(ciz.url, batch, to=ciz.identity.did)
    first, *rest = reply.message.answers
    assert len(first.records) == 1 and [a.error.code for a in rest] == ["too-large", "too-large"]
    shown = [e for e in await ciz.audit.entries() if e.trace_id == reply.envelope.trace_id]
    assert [e.record for e in shown] == [f"WlzIndicatie/{records[0]['wlzIndicatieID']}"]  # only what was shown
    # The requester asks what did not fit alone, and gets every record.
    before = _handled(ciz, "query")
    fetched = await zk.router.query_many(ciz.identity.did, asked)
    assert [r[0][0][0].record_id for r in fetched] == [r["wlzIndicatieID"] for r in records]
    assert _handled(ciz, "query") - before == 2


async def test_queries_with_much_evidence_go_in_smaller_batches() -> None:
    heavy = [("QBR-0007-ZK", {"bemiddelingID": str(n)}, [bytes(200_000)]) for n in range(5)]
    light = [("QIR-0001-ZKi", {"wlzIndicatieID": str(n)}, []) for n in range(130)]
    assert [len(c) for c in _chunks(heavy)] == [2, 2, 1]
    assert [len(c) for c in _chunks(light)] == [64, 64, 2]
    assert [item for chunk in _chunks(heavy + light) for item in chunk] == heavy + light


async def test_receipts_that_do_not_name_the_batch_deliver_nothing(network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """A receiver (or anything between) that answers receipts for other notifications, or in another order, does
    not get the batch marked delivered: each row is tried again."""
    ciz, zk = await network.start("ciz", "zk5151")
    honest = zk.inbox._on_notifications

    async def shuffled(incoming: Any, now: int) -> Any:
        reply, statements = await honest(incoming, now)
        return Receipts(receipts=tuple(reversed(reply.receipts))), statements

    monkeypatch.setitem(zk.dispatcher._handlers, Notifications, shuffled)
    ciz.outbox.max_delay = 600.0  # a row tried once stays pending for the test to see
    await put_indicaties(ciz, [indicatie() for _ in range(5)])
    deadline = asyncio.get_running_loop().time() + 10
    while not all(r["attempts"] >= 1 for r in await ciz.outbox.list()) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    rows = await ciz.outbox.list()
    assert len(rows) == 5 and {r["status"] for r in rows} == {"pending"}
    assert all("receipts do not name" in r["last_error"] for r in rows)
    assert not [e for e in await ciz.audit.entries() if e.event.startswith("notification.sent")]


async def test_a_refusal_in_a_receipt_reaches_no_log_or_row_as_it_was_written(network: Network,
                                                                              monkeypatch: pytest.MonkeyPatch,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    """A receiver's reason for refusing a notification of a batch is its own text: with a line break it forged a
    line in the sender's log, and it went into the outbox's last_error (the beheer page) as it was written."""
    ciz, zk = await network.start("ciz", "zk5151")
    nasty = "refused\n2026-12-06 WARNING forged line\r\x00\u202e\u2028" + "x" * 4000

    async def refusing(incoming: Any, now: int) -> Any:
        refusal = Receipt(ref="", status="refused", code="denied", reason=nasty)
        return Receipts(receipts=tuple(dataclasses.replace(refusal, ref=n.notification_id)
                                       for n in incoming.message.notifications)), []

    monkeypatch.setitem(zk.dispatcher._handlers, Notifications, refusing)
    ciz.outbox.max_delay = 600.0
    caplog.set_level(logging.INFO, logger="node.notify.outbox")
    await put_indicaties(ciz, [indicatie() for _ in range(3)])
    deadline = asyncio.get_running_loop().time() + 10
    while not all(r["attempts"] >= 1 for r in await ciz.outbox.list()) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    rows = await ciz.outbox.list()
    assert len(rows) == 3 and all("forged line" in r["last_error"] for r in rows)
    written = [r["last_error"] for r in rows] + [r.getMessage() for r in caplog.records]
    assert any("forged line" in text for text in written[3:])  # it was logged
    for text in written:
        assert not any(c in text for c in "\n\r\x00\u202e\u2028"), text[:200]
        assert len(text) < 700
