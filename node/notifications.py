"""Notifications that are never lost: the outbox at the source, the inbox at the receiver,
voluntary subscriptions.

Outbox: rows are written in the same transaction as the record change that
caused them; a delivery worker sends each one until the receiver answers
with a signed ``ack`` naming it, backing off exponentially (1 s, doubling,
capped) and keeping its state in SQLite across restarts; after a bounded time
a row becomes a dead letter with the reason, which an operator can retry.

Inbox: a notification is checked against the event table (sender role,
receiver type and identity), stored once (a duplicate id is acknowledged and
ignored), acknowledged, and then acted on: by default the node fetches the
record from its source with the matching query template, and keeps what it
learned (version, status), not a copy of the record.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from keys import Member
from node.audit import Actor
from node.errors import NodeError, PeerRefused
from node.events import Planned, plan
from node.store import Statement
from protocol import Ack, ErrorCode, Incoming, Notification, RemoteProtocolError, Subject, Subscribe, Unsubscribe
from protocol.events import EVENT_RULES

if TYPE_CHECKING:
    from node.service import Node

log = logging.getLogger(__name__)

ID_TYPE_OF_ROLE = {"ciz": ("KVK", "kvk"), "cak": ("KVK", "kvk"), "zorgkantoor": ("UZOVI", "uzovi"),
                   "zorgaanbieder": ("AGB", "agb")}
# How a receiver fetches what a notification is about: template and parameters.
FETCH: dict[str, Callable[[dict[str, str], dict[str, str]], tuple[str, dict[str, str]] | None]] = {
    "INDICATIE_ZORGKANTOOR": lambda ids, mine: ("QIR-0001-ZKi", {"wlzIndicatieID": ids["WlzIndicatie"], "uzovi": mine["uzovi"]}),
    "BEMIDDELINGSPECIFICATIE_ZORGAANBIEDER": lambda ids, mine: (
        "QBR-0001-ZA", {"bemiddelingspecificatieID": ids["Bemiddelingspecificatie"], "instelling": mine["agb"]}),
    "BEMIDDELINGSPECIFICATIE_ZORGKANTOOR": lambda ids, mine: ("QBR-0007-ZK", {"bemiddelingID": ids["Bemiddeling"], "uzovi": mine["uzovi"]}),
    "OVERDRACHT_ZORGKANTOOR": lambda ids, mine: ("QBR-0007-ZK", {"bemiddelingID": ids["Bemiddeling"], "uzovi": mine["uzovi"]}),
}
_OUTBOX_COLUMNS = ("notification_id", "event_type", "receiver_id_type", "receiver_id", "receiver_did", "subscription_id",
                   "subjects", "created_at", "attempts", "next_attempt_at", "status", "last_error", "delivered_at")


def _row(row: Any) -> dict[str, Any]:
    out = dict(zip(_OUTBOX_COLUMNS, row))
    out["subjects"] = json.loads(out["subjects"])
    return out


class Outbox:
    def __init__(self, node: Node, *, first_delay: float = 1.0, max_delay: float = 300.0,
                 dead_after: float = 7 * 24 * 3600, concurrency: int = 64) -> None:
        self.node = node
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.dead_after = dead_after
        self._limit = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()

    # Planning, inside the record's transaction --------------------------------

    async def statements_for(self, kind: str, record_id: str, old: dict[str, Any] | None, new: dict[str, Any] | None,
                             now: int) -> list[Statement]:
        responsible: set[str] = set()
        if kind == "WlzIndicatie":
            rows = await self.node.store.fetchall("SELECT uzovi FROM responsible WHERE wlzIndicatieID = ?", (record_id,))
            responsible = {r[0] for r in rows}
        own_uzovi = self.node.member.identifiers.get("uzovi")
        planned = plan(kind, record_id, old, new, own_uzovi=own_uzovi, responsible=responsible)
        planned += await self._for_subscribers(planned)
        return [self._insert(p, now) for p in planned]

    async def _for_subscribers(self, planned: list[Planned]) -> list[Planned]:
        if not planned:
            return []
        rows = await self.node.store.fetchall(
            "SELECT subscription_id, subscriber_did, receiver_id_type, receiver_id, events FROM subscriptions")
        extra = []
        for subscription_id, did, id_type, receiver_id, events in rows:
            wanted = set(json.loads(events))
            for p in planned:
                if p.event_type in wanted and (p.receiver_id_type, p.receiver_id) != (id_type, receiver_id):
                    extra.append(replace(p, receiver_id_type=id_type, receiver_id=receiver_id,
                                         subscription_id=subscription_id, receiver_did=did))
        return extra

    def _insert(self, planned: Planned, now: int) -> Statement:
        subscription_id, receiver_did = planned.subscription_id, planned.receiver_did
        subjects = json.dumps([{"subject": planned.subject, "record_id": planned.record_id}])
        return ("INSERT INTO outbox (notification_id, event_type, receiver_id_type, receiver_id, receiver_did, subscription_id, "
                "subjects, created_at, attempts, next_attempt_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 'pending')",
                (str(uuid.uuid4()), planned.event_type, planned.receiver_id_type, planned.receiver_id, receiver_did,
                 subscription_id, subjects, now, 0.0), False)

    def wake(self) -> None:
        self._wake.set()

    async def peer_back(self, did: str, identifiers: dict[str, str]) -> None:
        """A peer (re)announced itself: what waits for it is due now, whatever its backoff."""
        conditions = ["receiver_did = ?"] + ["(receiver_id_type = ? AND receiver_id = ?)"] * len(identifiers)
        params: list[Any] = [did] + [v for k, value in identifiers.items() for v in (k.upper(), value)]
        await self.node.store.write([(
            f"UPDATE outbox SET next_attempt_at = 0 WHERE status = 'pending' AND ({' OR '.join(conditions)})", params, False)])
        self.wake()

    # Delivery -------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                wait = await self.deliver_due()
                await self.node.inbox.retry_failed()
            except NodeError as exc:
                log.warning("outbox delivery round failed: %s", exc.__class__.__name__)
                wait = self.first_delay
            if wait > 0:
                try:
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                except TimeoutError:
                    pass
            self._wake.clear()

    async def deliver_due(self) -> float:
        """Deliver what is due; returns the seconds until the next row falls due."""
        now = time.time()
        rows = [_row(r) for r in await self.node.store.fetchall(
            f"SELECT {', '.join(_OUTBOX_COLUMNS)} FROM outbox WHERE status = 'pending' AND next_attempt_at <= ? "
            "ORDER BY next_attempt_at LIMIT 512", (now,))]
        if rows:
            results = await asyncio.gather(*(self._deliver(row) for row in rows))
            _crash_point("after-delivery-before-commit")
            await self.node.store.write([s for statements in results for s in statements])
            if len(rows) == 512:
                return 0.0
        nxt = await self.node.store.fetchone("SELECT min(next_attempt_at) FROM outbox WHERE status = 'pending'")
        if nxt is None or nxt[0] is None:
            return 5.0
        return max(0.0, min(5.0, float(nxt[0]) - time.time()))

    def _sender_id(self) -> tuple[str, str]:
        id_type, key = ID_TYPE_OF_ROLE[self.node.member.role]
        return id_type, self.node.member.identifiers[key]

    async def _deliver(self, row: dict[str, Any]) -> list[Statement]:
        async with self._limit:
            now = int(time.time())
            sender_type, sender_id = self._sender_id()
            note = Notification(
                notification_id=row["notification_id"], event_type=row["event_type"], timestamp=row["created_at"],
                sender_id_type=sender_type, sender_id=sender_id, receiver_id_type=row["receiver_id_type"],
                receiver_id=row["receiver_id"], subscription_id=row["subscription_id"],
                subjects=tuple(Subject(**s) for s in row["subjects"]),
            )
            try:
                peer = self._receiver(row)
                reply = await self.node.client.request(peer.url, note, to=peer.did)
                ack = reply.message
                if not isinstance(ack, Ack) or ack.ref != row["notification_id"]:
                    raise PeerRefused("malformed", "the acknowledgement does not name this notification")
            except (NodeError, RemoteProtocolError) as exc:
                return self._failed(row, str(exc), now)
            self.node.metrics.count_request("notification-sent", "delivered")
            return [
                ("UPDATE outbox SET status = 'delivered', delivered_at = ?, attempts = attempts + 1, last_error = NULL "
                 "WHERE notification_id = ?", (now, row["notification_id"]), False),
                self.node.audit.entry(now=now, event=f"notification.sent {row['event_type']}", action="E",
                                      result=ack.status, actor=_actor(reply.sender), record=row["subjects"][0]["record_id"],
                                      trace_id=reply.envelope.trace_id, rule=row["notification_id"]),
            ]

    def _receiver(self, row: dict[str, Any]) -> Any:
        peers = self.node.peers
        peer = peers.get(row["receiver_did"]) if row["receiver_did"] else \
            peers.by_identifier(row["receiver_id_type"].lower(), row["receiver_id"])
        if peer is None:
            raise PeerRefused("unavailable", f"no peer with {row['receiver_id_type']} {row['receiver_id']} is known")
        return peer

    def _failed(self, row: dict[str, Any], reason: str, now: int) -> list[Statement]:
        attempts = row["attempts"] + 1
        dead = now - row["created_at"] >= self.dead_after
        delay = min(self.max_delay, self.first_delay * 2 ** (attempts - 1))
        self.node.metrics.count_request("notification-sent", "dead" if dead else "retry")
        log.info("notification %s not delivered (attempt %d): %s", row["notification_id"], attempts, reason)
        return [("UPDATE outbox SET attempts = ?, next_attempt_at = ?, status = ?, last_error = ? WHERE notification_id = ?",
                 (attempts, time.time() + delay, "dead" if dead else "pending", reason[:500], row["notification_id"]), False)]

    # Operator commands ------------------------------------------------------------

    async def list(self, status: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        where, params = ("WHERE status = ?", (status,)) if status else ("", ())
        rows = await self.node.store.fetchall(
            f"SELECT {', '.join(_OUTBOX_COLUMNS)} FROM outbox {where} ORDER BY created_at LIMIT ?", (*params, limit))
        return [_row(r) for r in rows]

    async def retry(self, notification_id: str | None) -> int:
        """Put dead letters (one, or all) back in the queue, due now."""
        where, params = ("AND notification_id = ?", (notification_id,)) if notification_id else ("", ())
        rows = await self.node.store.fetchall(f"SELECT notification_id FROM outbox WHERE status = 'dead' {where}", params)
        if rows:
            await self.node.store.write([(
                f"UPDATE outbox SET status = 'pending', next_attempt_at = 0, created_at = ? WHERE status = 'dead' {where}",
                (int(time.time()), *params), False)])
            self.wake()
        return len(rows)


def _actor(member: Member) -> Actor:
    return Actor(member.did, member.role, member.organisation)


class Inbox:
    """The receiving side: check, store once, acknowledge, then act on it."""

    def __init__(self, node: Node, hook: Callable[[dict[str, Any]], Awaitable[None]] | None = None) -> None:
        self.node = node
        self.hook = hook
        self._last_retry = 0.0

    def _check(self, incoming: Incoming, note: Notification) -> None:
        rule = EVENT_RULES[note.event_type]
        sender = incoming.sender
        if rule.sender_role != sender.role:
            raise RemoteProtocolError(ErrorCode.DENIED, f"a {sender.role} node may not send {note.event_type}",
                                      rule="NOTIFICATION-SENDER-ROLE")
        sender_type, key = ID_TYPE_OF_ROLE.get(sender.role, ("", ""))
        if (note.sender_id_type, note.sender_id) != (sender_type, sender.identifiers.get(key)):
            raise RemoteProtocolError(ErrorCode.DENIED, "afzender does not match the sender's certificate",
                                      rule="NOTIFICATION-SENDER-ID")
        if note.subscription_id is None and note.receiver_id_type != rule.receiver_id_type:
            raise RemoteProtocolError(ErrorCode.DENIED, f"{note.event_type} is not sent to a {note.receiver_id_type}",
                                      rule="NOTIFICATION-RECEIVER-TYPE")
        mine = self.node.member.identifiers.get(note.receiver_id_type.lower())
        if mine != note.receiver_id:
            raise RemoteProtocolError(ErrorCode.WRONG_RECIPIENT, "the notification names another receiver",
                                      rule="NOTIFICATION-RECEIVER-ID")

    async def receive(self, incoming: Incoming, now: int) -> Ack:
        note = incoming.message
        assert isinstance(note, Notification)
        self._check(incoming, note)
        known = await self.node.store.fetchone("SELECT 1 FROM inbox WHERE notification_id = ?", (note.notification_id,))
        if known:
            return Ack(ref=note.notification_id, status="duplicate")
        subjects = json.dumps([{"subject": s.subject, "record_id": s.record_id} for s in note.subjects])
        await self.node.store.write([
            ("INSERT OR IGNORE INTO inbox (notification_id, sender_did, sender_org, event_type, subjects, received_at, status) "
             "VALUES (?, ?, ?, ?, ?, ?, 'received')",
             (note.notification_id, incoming.sender.did, incoming.sender.organisation, note.event_type, subjects, now), False),
            self.node.audit.entry(now=now, event=f"notification.received {note.event_type}", action="C", result="stored",
                                  actor=_actor(incoming.sender), record=note.subjects[0].record_id,
                                  trace_id=incoming.envelope.trace_id, rule=note.notification_id, request=incoming.data),
        ])
        _crash_point("after-inbox-commit")
        task = asyncio.create_task(self._act(note.notification_id, note.event_type, note.subjects, incoming.sender.did))
        self.node.background(task)
        return Ack(ref=note.notification_id, status="accepted")

    async def _act(self, notification_id: str, event_type: str, subjects: tuple[Subject, ...], source_did: str) -> None:
        ids = {}
        for subject in subjects:
            for path in (subject.subject, subject.record_id):
                kind, _, ident = path.partition("/")
                ids[kind] = ident
        family = event_type.split("_", 1)[1]
        fetch = FETCH.get(family)
        # A subscriber of another role may not read what it is told about: it only notes it.
        fits = EVENT_RULES[event_type].receiver_role == self.node.member.role
        wanted = fetch is not None and fits and self.node.config.inbox_fetch
        request = fetch(ids, dict(self.node.member.identifiers)) if wanted and fetch else None
        status, version, detail = "noted", None, "nothing to fetch for this event type"
        if request is not None and not event_type.startswith("VERWIJDERDE"):
            try:
                evidence = await self._evidence_for(request[1].get("wlzIndicatieID"))
                results = await self.node.query_peer(source_did, request[0], request[1], evidence)
                version = max((r.version for r, _, _ in results), default=None)
                status, detail = ("fetched", f"{request[0]}: {len(results)} record(s)")
                await self._keep_evidence(results)
            except NodeError as exc:
                status, detail = "fetch-failed", str(exc)[:300]
        elif event_type.startswith("VERWIJDERDE"):
            status, detail = "noted", "the record was deleted at its source"
        await self.node.store.write([("UPDATE inbox SET status = ?, fetched_version = ?, detail = ? WHERE notification_id = ?",
                                      (status, version, detail, notification_id), False)])
        if self.hook is not None:
            await self.hook({"notification_id": notification_id, "event_type": event_type, "status": status,
                             "version": version})

    async def _evidence_for(self, indicatie_id: str | None) -> list[bytes]:
        if indicatie_id is None:
            return []
        rows = await self.node.store.fetchall("SELECT signed FROM evidence WHERE wlzIndicatieID = ?", (indicatie_id,))
        return [bytes(r[0]) for r in rows]

    async def _keep_evidence(self, results: list[Any]) -> None:
        """Signed bemiddelingen and specificaties that name us are our evidence at CIZ later on."""
        rows = [(record.kind, record.record_id, record.data["wlzIndicatieID"], raw) for record, _, raw in results
                if record.kind in ("Bemiddeling", "Bemiddelingspecificatie") and record.data and "wlzIndicatieID" in record.data]
        if rows:
            await self.node.store.write([("INSERT OR REPLACE INTO evidence (kind, record_id, wlzIndicatieID, signed) "
                                          "VALUES (?, ?, ?, ?)", rows, True)])

    async def retry_failed(self, every: float = 2.0) -> int:
        """Fetch again what could not be fetched (the source was away), at most every ``every`` seconds."""
        now = time.monotonic()
        if now - self._last_retry < every:
            return 0
        self._last_retry = now
        return await self.resume(status="fetch-failed")

    async def resume(self, status: str = "received") -> int:
        """Act on notifications stored but not yet acted on (the node stopped in between)."""
        rows = await self.node.store.fetchall(
            "SELECT notification_id, sender_did, event_type, subjects, received_at FROM inbox WHERE status = ?", (status,))
        for notification_id, sender_did, event_type, subjects, _ in rows:
            parsed = tuple(Subject(**item) for item in json.loads(subjects))
            self.node.background(asyncio.create_task(self._act(notification_id, event_type, parsed, sender_did)))
        return len(rows)

    async def list(self, limit: int = 1000) -> list[dict[str, Any]]:
        keys = ("notification_id", "sender_did", "sender_org", "event_type", "subjects", "received_at", "status",
                "fetched_version", "detail")
        rows = await self.node.store.fetchall(f"SELECT {', '.join(keys)} FROM inbox ORDER BY received_at LIMIT ?", (limit,))
        return [dict(zip(keys, row)) | {"subjects": json.loads(row[4])} for row in rows]


class Subscriptions:
    """Voluntary subscriptions at a source, checked against the matrix (policy.json "subscriptions")."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def subscribe(self, incoming: Incoming, now: int) -> tuple[Ack, list[Statement]]:
        request = incoming.message
        assert isinstance(request, Subscribe)
        matrix = self.node.pdp.matrix["subscriptions"]
        member = incoming.sender
        refused = [e for e in request.events if member.role not in matrix["allowed"].get(e, [])]
        if refused or EVENT_RULES[request.events[0]].sender_role != self.node.member.role:
            raise RemoteProtocolError(ErrorCode.DENIED, f"a {member.role} may not subscribe to {', '.join(refused or request.events)} here",
                                      rule=matrix["rule"])
        id_type, key = ID_TYPE_OF_ROLE[member.role]
        subscription_id = str(uuid.uuid4())
        return Ack(ref=subscription_id, status="accepted"), [
            ("INSERT INTO subscriptions (subscription_id, subscriber_did, subscriber_org, receiver_id_type, receiver_id, events, "
             "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
             (subscription_id, member.did, member.organisation, id_type, member.identifiers[key], json.dumps(list(request.events)),
              now), False),
            self.node.audit.entry(now=now, event="subscription.create", action="C", result="accepted", actor=_actor(member),
                                  rule=matrix["rule"], trace_id=incoming.envelope.trace_id, request=incoming.data),
        ]

    async def unsubscribe(self, incoming: Incoming, now: int) -> tuple[Ack, list[Statement]]:
        request = incoming.message
        assert isinstance(request, Unsubscribe)
        row = await self.node.store.fetchone("SELECT subscriber_did FROM subscriptions WHERE subscription_id = ?",
                                             (request.subscription_id,))
        if row is None or row[0] != incoming.sender.did:
            raise RemoteProtocolError(ErrorCode.NOT_FOUND, "no such subscription of yours")
        return Ack(ref=request.subscription_id, status="accepted"), [
            ("DELETE FROM subscriptions WHERE subscription_id = ?", (request.subscription_id,), False),
            self.node.audit.entry(now=now, event="subscription.delete", action="D", result="ok",
                                  actor=_actor(incoming.sender), trace_id=incoming.envelope.trace_id),
        ]


def _crash_point(name: str) -> None:
    """Fault injection for the end-to-end tests: exit hard at a named point, once.

    Armed only when IWLZ_CRASH_AT names the point and IWLZ_CRASH_FLAG names a file that exists;
    the file is removed first, so the restarted process runs normally.
    """
    flag = os.environ.get("IWLZ_CRASH_FLAG")
    if os.environ.get("IWLZ_CRASH_AT") == name and flag and os.path.exists(flag):
        os.unlink(flag)
        os._exit(137)


__all__ = ["Outbox", "Inbox", "Subscriptions"]
