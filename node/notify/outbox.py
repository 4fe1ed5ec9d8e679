"""The outbox: notifications that are never lost.

Rows are written in the same transaction as the record change that caused
them; a delivery worker sends each one until the receiver answers with a
signed ``ack`` naming it, backing off exponentially (1 s, doubling, capped)
and keeping its state in SQLite across restarts; after a bounded time a row
becomes a dead letter with the reason, which an operator can retry.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _quoted
from typing import Any, Final

from keys import Member
from node.discovery import Peer, PeerTable
from node.errors import NetworkError, NodeError, PeerRefused
from node.faults import crash_point
from node.interfaces import Requester
from node.metrics import Metrics
from node.notify.events import ID_TYPE_OF_ROLE, Planned, plan
from node.store import Actor, AuditLog, Statement, Store
from node.tasks import Spawn
from node.discovery.routing import SINGLE_ONLY_FOR
from protocol import (
    MAX_BATCH, MELDING_EVENT, Ack, ErrorCode, Incoming, Melding, Notification, Notifications, Receipts, RemoteProtocolError,
    Subject,
)

log = logging.getLogger(__name__)
BATCH = 4096  # deliveries in flight at most; the concurrency limit bounds how many talk at the same moment
# Deliveries in flight to one receiver at most: eight full messages once it has answered (a receiver stores and
# fetches back while the next messages arrive), one before: a receiver that has not answered since the node
# started, or since it stopped answering, may swallow connections, and holds one of the shared slots for talking
# until the client's timeout, not eight.
PER_RECEIVER = 8 * MAX_BATCH

# (record kind, record data) -> every party that holds, held or was handed authority over the record
Parties = Callable[[str, dict[str, Any]], Awaitable[set[str]]]
# (record kind, [(record data, the notifications planned for its change)], now) -> what subscribers get on top, per change
Subscribers = Callable[[str, list[tuple[dict[str, Any], list[Planned]]], int], Awaitable[list[list[Planned]]]]

_OUTBOX_COLUMNS = ("notification_id", "event_type", "receiver_id_type", "receiver_id", "receiver_did", "subscription_id",
                   "subjects", "created_at", "attempts", "next_attempt_at", "status", "last_error", "delivered_at",
                   "receiver_url", "payload")
# A source that refuses a melding with one of these will refuse it again: it ends as refused, not retried.
_FINAL_REFUSALS = ("denied", "not-found", "malformed")
# Never given up after outbox_dead_after: a source that did not hear of a withdrawal would honour the consent.
KEPT_TRYING: Final = ("VERWIJDERDE_TOESTEMMING_BRON", "VERWIJDERDE_TOESTEMMING_ONTVANGER")
_MAY_END: Final = f"event_type NOT IN ({', '.join(repr(e) for e in KEPT_TRYING)})"


def _row(row: Any) -> dict[str, Any]:
    out = dict(zip(_OUTBOX_COLUMNS, row))
    # A subject's record id is stored only when it differs from the subject (an outbox holds one row per change).
    out["subjects"] = [{"record_id": s["subject"]} | s for s in json.loads(out["subjects"])]
    out["payload"] = json.loads(out["payload"]) if out["payload"] else None
    return out


# What a pass reads of every due row to choose what to start: its address, not the notification.
_CANDIDATE_COLUMNS = "rowid, notification_id, event_type, receiver_id_type, receiver_id, receiver_did, receiver_url"


@dataclass
class _Chosen:
    start: list[tuple[int, str]] = field(default_factory=list)  # (rowid, receiver did), in the order due
    nowhere: list[int] = field(default_factory=list)  # rowids of rows no peer names a receiver for
    # (notification id, when due, receiver did): rows that wait for a probe
    waiting: list[tuple[str, float, str]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)  # rows started this pass, per receiver
    opened: dict[str, int] = field(default_factory=dict)  # unreachable receiver -> rows of the probe message opened


# The receivers (receiver_id_type, receiver_id) with pending rows, at most ? of them, that have a row due by ?: one
# seek in the receiver index per type and per receiver (SQLite has no skip scan for this), so a receiver with a
# million rows costs what one with a single row does.
_DUE_RECEIVERS = """
WITH RECURSIVE
  types(t) AS (
    SELECT min(receiver_id_type) FROM outbox WHERE status = 'pending'
    UNION ALL
    SELECT (SELECT min(receiver_id_type) FROM outbox WHERE status = 'pending' AND receiver_id_type > types.t)
    FROM types WHERE types.t IS NOT NULL),
  receivers(t, i) AS (
    SELECT t, (SELECT min(receiver_id) FROM outbox WHERE status = 'pending' AND receiver_id_type = types.t)
    FROM types WHERE t IS NOT NULL
    UNION ALL
    SELECT t, (SELECT min(receiver_id) FROM outbox WHERE status = 'pending' AND receiver_id_type = receivers.t
               AND receiver_id > receivers.i)
    FROM receivers WHERE i IS NOT NULL LIMIT ?)
SELECT t, i FROM receivers WHERE i IS NOT NULL AND (
  SELECT min(next_attempt_at) FROM outbox WHERE status = 'pending' AND receiver_id_type = receivers.t
  AND receiver_id = receivers.i) <= ?
"""
# The oldest rows due of each receiver in a JSON list of [receiver_id_type, receiver_id], at most ? a receiver and ?
# in all, oldest first.
_DUE_OF_RECEIVERS = f"""
SELECT {', '.join('o.' + column for column in _CANDIDATE_COLUMNS.split(', '))} FROM json_each(?) AS r, outbox AS o
WHERE o.rowid IN (SELECT rowid FROM outbox WHERE status = 'pending' AND receiver_id_type = json_extract(r.value, '$[0]')
                  AND receiver_id = json_extract(r.value, '$[1]') AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?)
ORDER BY o.next_attempt_at LIMIT ?
"""
_MAX_RECEIVERS_READ = 10_000  # bounds the scan; a receiver past it is read in due order, as before

# How a list of one status finds its rows: dead letters and what is pending through the partial indexes that hold
# only them (the status written out, or SQLite would not use them), not by walking every notification ever sent,
# newest first, until a page of the few is found. Delivered ones are the bulk: the newest of all is as good.
_LISTED: dict[str, str] = {
    "": "",
    "dead": "INDEXED BY outbox_dead WHERE status = 'dead'",
    "pending": "INDEXED BY outbox_due WHERE status = 'pending'",
}

NO_PEER_YET = "no peer with this identifier is known (yet)"
# next_attempt_at of a row that waits for its receiver to become known (9999-12-31): peer_back, or the node's start
# (wake_known), makes it due; nothing reads or rewrites it before (end_waiting ends it after dead_after).
WAITING = 253402300799.0
# The receiver of care the CAK must hear of while no CAK is known: a KvK number no party has, so the row waits.
ANY_CAK = "*"


INSERT_NOTIFICATION = (
    "INSERT INTO outbox (notification_id, event_type, receiver_id_type, receiver_id, receiver_did, subscription_id, "
    "subjects, created_at, attempts, next_attempt_at, status, receiver_url, last_error) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 'pending', ?, ?)")


def new_notification_id() -> str:
    """A lowercase UUID in the v4 form the protocol names, whose first 48 bits are the time in milliseconds: ids
    made one after another sort one after another, so the outbox's key index (and a receiver's inbox) grows at its
    end instead of in a random page (`python -m bench.outbox`: 1,000,000 rows cost 32.3 µs a row with random ids,
    19.9 µs with these). The other 74 bits are random: two ids of the same millisecond are the same with a chance of
    one in 10^22."""
    random = os.urandom(10).hex()  # 74 of its 80 bits are used (two of the fourth digit's, for the variant)
    ms = f"{time.time_ns() // 1_000_000:012x}"
    return f"{ms[:8]}-{ms[8:]}-4{random[:3]}-{_VARIANT[random[3]]}{random[4:7]}-{random[7:19]}"


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}  # RFC 9562's variant bits, 10xx


def _subjects(subject: str, record_id: str) -> str:
    """What json.dumps([{"subject": ..., "record_id": ...}]) gives (record_id left out when it is the subject), at a
    tenth of its cost: an import writes one per notification."""
    if record_id == subject:
        return f'[{{"subject": {_quoted(subject)}}}]'
    return f'[{{"subject": {_quoted(subject)}, "record_id": {_quoted(record_id)}}}]'


class Outbox:
    def __init__(self, *, store: Store, audit: AuditLog, member: Member, peers: PeerTable, client: Requester,
                 metrics: Metrics, parties: Parties, subscribers: Subscribers, spawn: Spawn, first_delay: float = 1.0, max_delay: float = 300.0,
                 probe_max_delay: float = 15.0, dead_after: float = 7 * 24 * 3600, concurrency: int = 64) -> None:
        self.delivered_since_start = 0
        self.store = store
        self.audit = audit
        self.member = member
        self.peers = peers
        self.client = client
        self.metrics = metrics
        self.parties = parties
        self.subscribers = subscribers
        self.spawn = spawn
        self._in_flight: set[str] = set()
        self._flying: Counter[str] = Counter()  # receiver did -> its deliveries in flight
        self._answered: set[str] = set()  # receivers that answered the last delivery to them
        self._capped: set[str] = set()  # receivers with due rows a pass left for want of room: a delivery's end wakes
        # Receivers whose last delivery did not get through: one notification at a time probes them, the rest
        # wait for its outcome, so a stopped receiver costs an attempt per backoff step, not one per notification.
        self._unreachable: dict[str, float] = {}  # receiver did -> when the next probe may go
        self._probing: set[str] = set()
        self._single_only: dict[str, float] = {}  # receiver did -> until when it gets one notification per message
        self.first_delay = first_delay
        self.max_delay = max_delay
        # An unreachable receiver costs one probe per step whatever its backlog, so its steps stay short: a node
        # that comes back where no announcement of it reaches us (a name not yet in DNS, a lost push) is found
        # within seconds, not after minutes of doubling.
        self.probe_max_delay = probe_max_delay
        self.dead_after = dead_after
        self._limit = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()

    # Planning, inside the record's transaction --------------------------------

    async def statements_for(self, kind: str, changes: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]],
                             now: int) -> list[Statement]:
        """The outbox rows a batch of record changes causes (Registers.notifier)."""
        own_uzovi = self.member.identifiers.get("uzovi")
        # Care the CAK must hear of, recorded before this node heard of any CAK, waits for the first that announces
        # itself (``_for_the_cak``): leaving it out lost it for good.
        cak = {p.identifiers["kvk"] for p in self.peers.all() if p.role == "cak" and "kvk" in p.identifiers} or {ANY_CAK}
        planned: list[list[Planned]] = []
        for record_id, old, new in changes:
            # Who held authority matters only for a record that existed: a new one goes to its first party.
            responsible = await self.parties(kind, old) if old is not None else set()
            planned.append(plan(kind, record_id, old, new, own_uzovi=own_uzovi, responsible=responsible, cak=cak))
        extra = await self.subscribers(kind, [(new or old or {}, p) for (_, old, new), p in zip(changes, planned)], now)
        return [self._insert(p, now) for batch in (*planned, *extra) for p in batch]

    def _insert(self, planned: Planned, now: int) -> Statement:
        subscription_id, receiver_did = planned.subscription_id, planned.receiver_did
        subjects = _subjects(planned.subject, planned.record_id)
        # A receiver no peer names yet is not tried: its rows wait (WAITING) until a peer names it. An import for
        # parties not known yet (a million rows) would otherwise be read back and rewritten, a row at a time,
        # straight after it was written and then every max_delay.
        known = self._did_of(receiver_did, planned.receiver_id_type, planned.receiver_id, planned.receiver_url) is not None
        return (INSERT_NOTIFICATION,
                (new_notification_id(), planned.event_type, planned.receiver_id_type, planned.receiver_id, receiver_did,
                 subscription_id, subjects, now, 0.0 if known else WAITING, planned.receiver_url,
                 None if known else NO_PEER_YET), False)

    @staticmethod
    def melding_row(melding_id: str, did: str, url: str, record: str, payload: dict[str, Any], now: int) -> Statement:
        """A melding to send to a source (node/notify/meldingen.py): delivered like a notification, addressed by did."""
        return ("INSERT INTO outbox (notification_id, event_type, receiver_id_type, receiver_id, receiver_did, subjects, "
                "created_at, attempts, next_attempt_at, status, receiver_url, payload) "
                "VALUES (?, ?, 'DID', ?, ?, ?, ?, 0, 0, 'pending', ?, ?)",
                (melding_id, MELDING_EVENT, did, did, _subjects(record, record), now, url,
                 json.dumps(payload)), False)

    def wake(self) -> None:
        self._wake.set()

    async def peer_back(self, did: str, identifiers: "builtins.list[tuple[str, str]]") -> None:
        """A peer (re)announced itself: what waits for it (by did, or by any identifier) is due now, whatever its
        backoff."""
        self._unreachable.pop(did, None)
        await self.store.write([*self._for_the_cak(did), self._due_now(did, identifiers)])
        self.wake()

    async def wake_known(self) -> None:
        """At start: what waits for a receiver the peer table names now is due (a peer_back the node did not get
        to, or rows from before WAITING). One statement per peer, each found through the receiver indexes."""
        statements = [statement for peer in self.peers.all() for statement in (
            *self._for_the_cak(peer.did), self._due_now(peer.did, peer.identifier_values(), waiting_only=True))]
        if statements:
            await self.store.write(statements)

    def _for_the_cak(self, did: str) -> "builtins.list[Statement]":
        """If ``did`` is a CAK: what waited for any CAK is addressed to it (found through the receiver index)."""
        peer = self.peers.get(did)
        kvk = peer.identifiers.get("kvk") if peer is not None and peer.role == "cak" else None
        if kvk is None:
            return []
        return [("UPDATE outbox SET receiver_id = ? WHERE status = 'pending' AND receiver_id_type = 'KVK' AND receiver_id = ?",
                 (kvk, ANY_CAK), False)]

    async def end_waiting(self, now: int) -> None:
        """Housekeeping: a row that waited dead_after for its receiver to become known ends as a dead letter, as a
        row tried that long does."""
        await self.store.write([("UPDATE outbox SET status = 'dead' WHERE status = 'pending' AND next_attempt_at >= ? "
                                 f"AND created_at <= ? AND {_MAY_END}", (WAITING, now - self.dead_after), False)])

    def _due_now(self, did: str, identifiers: "builtins.list[tuple[str, str]]", *, waiting_only: bool = False) -> Statement:
        """What waits for this receiver is due now: all of it, or only what waits for it to become known (rows
        backing off from a receiver that did not answer keep their time). Due *now*, not at 0: a backlog that
        waited queues behind what is due already and what falls due later (a new row is due at 0), so that the
        notifications to everyone else do not wait until it has all gone."""
        where, params = self._addressed_to(did, identifiers)
        if waiting_only:
            where, params = f"next_attempt_at >= ? AND {where}", [WAITING, *params]
        return (f"UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending' AND {where}", [time.time(), *params],
                False)

    @staticmethod
    def _addressed_to(did: str, identifiers: "builtins.list[tuple[str, str]]") -> tuple[str, "builtins.list[Any]"]:
        """The pending outbox rows for one receiver: by its did, or by any identifier it is known by. Each is found
        through its receiver index (an OR of the conditions reads every pending row, a million after a large
        import)."""
        finds = ["SELECT rowid FROM outbox WHERE status = 'pending' AND receiver_did = ?"] + [
            "SELECT rowid FROM outbox WHERE status = 'pending' AND receiver_id_type = ? AND receiver_id = ?"] * len(identifiers)
        return f"rowid IN ({' UNION ALL '.join(finds)})", [did] + [v for k, value in identifiers for v in (k.upper(), value)]

    def _others_of(self, did: str, row: dict[str, Any]) -> tuple[str, "builtins.list[Any]"]:
        """Where-clause and parameters of every other pending row for the receiver ``did``, as the peer table knows
        it (by did, or by any of its identifiers)."""
        peer = self.peers.get(did)
        where, params = self._addressed_to(did, peer.identifier_values() if peer is not None else [])
        return f"status = 'pending' AND notification_id != ? AND {where}", [row["notification_id"], *params]

    # Delivery -------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self.wake_known()
        except NodeError as exc:
            log.warning("could not make due what waits for known peers: %s", exc.__class__.__name__)
        while True:
            try:
                wait = await self.deliver_due()
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
        """Start delivering what is due; returns the seconds until the next row falls due.

        Each delivery runs and records its outcome on its own, so a receiver that does not answer holds up
        only what is meant for it, never the notifications to everyone else.
        """
        now = time.time()
        room = BATCH - len(self._in_flight)
        if room <= 0:  # a delivery that ends wakes us (_finished)
            return 5.0
        # What is in flight was due first, so BATCH rows hold it and as many as there is room for. A pass reads
        # their addresses to choose, and the notifications only of what it starts.
        candidates = await self.store.fetchall(
            f"SELECT {_CANDIDATE_COLUMNS} FROM outbox WHERE status = 'pending' AND next_attempt_at <= ? "
            "ORDER BY next_attempt_at LIMIT ?", (now, BATCH))
        chosen = _Chosen()
        self._capped.clear()
        self._choose(candidates, room, now, chosen)
        if len(candidates) == BATCH and self._capped and len(chosen.start) < room:
            # The window is full of rows for receivers without room (an import for one of them): what the others
            # have due may lie past it, and is read receiver by receiver.
            read = {candidate[0] for candidate in candidates}
            others = await self._due_past(now, chosen)
            self._choose([row for row in others if row[0] not in read], room, now, chosen)
        rows = await self._rows([rowid for rowid, _ in chosen.start] + chosen.nowhere)
        groups: dict[str, list[dict[str, Any]]] = {}  # receiver did -> notifications to send it in one message
        for rowid, did in chosen.start:
            row = rows.get(rowid)
            if row is None:  # no longer pending since it was chosen
                continue
            self._in_flight.add(row["notification_id"])
            self._flying[did] += 1
            if did in self._unreachable:
                self._probing.add(did)
            if self._one_per_message(row["event_type"], did, now):
                self.spawn(self._deliver_and_record([row], did), "delivery")
                continue
            group = groups.setdefault(did, [])
            group.append(row)
            if len(group) == MAX_BATCH:
                self.spawn(self._deliver_and_record(groups.pop(did), did), "delivery")
        for did, group in groups.items():
            self.spawn(self._deliver_and_record(group, did), "delivery")
        nowhere = [rows[rowid] for rowid in chosen.nowhere if rowid in rows]
        if nowhere:
            log.info("%d notification(s) wait for a receiver no peer table entry names yet", len(nowhere))
        # A probe that got through while the rows were read made everything for its receiver due: what was to
        # wait for it must not be put off after all.
        waiting = [(notification_id, due) for notification_id, due, did in chosen.waiting if did in self._unreachable]
        if nowhere or waiting:
            await self.store.write(
                [self._no_peer_yet(row, int(now)) for row in nowhere]
                + [("UPDATE outbox SET next_attempt_at = ? WHERE notification_id = ? AND status = 'pending'",
                    (due, notification_id), False) for notification_id, due in waiting])
        # What this pass left due is in flight, or waits for room at its receiver: the end of a delivery wakes the
        # next pass (_finished). Reading it again before would find the same rows.
        if len(candidates) == BATCH:  # more may be due beyond what was read: only rows moved on make room to see it
            return 0.0 if chosen.nowhere or chosen.waiting else 5.0
        nxt = await self.store.fetchone(
            "SELECT min(next_attempt_at) FROM outbox WHERE status = 'pending' AND next_attempt_at > ?", (now,))
        if nxt is None or nxt[0] is None:
            return 5.0
        return max(0.0, min(5.0, float(nxt[0]) - time.time()))

    def _choose(self, candidates: "builtins.list[Any]", room: int, now: float, chosen: _Chosen) -> None:
        """Which due rows a pass starts (in order, with their receiver), which wait for a receiver no peer names,
        and which wait for a probe: decided on their addresses alone, so that what is skipped is never decoded."""
        counts, opened = chosen.counts, chosen.opened
        for rowid, notification_id, event_type, id_type, identifier, receiver_did, url in candidates:
            if len(chosen.start) == room:
                break
            if notification_id in self._in_flight:
                continue
            did = self._did_of(receiver_did, id_type, identifier, url)
            if did is None:
                chosen.nowhere.append(rowid)  # no address to try: backed off, no task, no request
                continue
            if did in self._unreachable:
                # One message probes it: rows join the one this pass opens; the rest wait for its outcome.
                if did in opened or did in self._probing:
                    if did not in opened or counts[did] >= opened[did]:
                        chosen.waiting.append((notification_id, now + self.max_delay, did))
                        continue
                elif now < self._unreachable[did]:  # due with the next probe
                    chosen.waiting.append((notification_id, self._unreachable[did], did))
                    continue
                else:
                    opened[did] = 1 if self._one_per_message(event_type, did, now) else MAX_BATCH
            elif not self._has_room(did, counts, now):
                self._capped.add(did)
                continue
            counts[did] += 1
            chosen.start.append((rowid, did))

    async def _due_past(self, now: float, chosen: _Chosen) -> "builtins.list[Any]":
        """What is due for receivers that still have room, read receiver by receiver through the receiver index
        (a scan from one receiver's key to the next, then each one's oldest rows): the cost grows with the number
        of receivers, not with the backlog a full one has."""
        keys = await self.store.fetchall(_DUE_RECEIVERS, (_MAX_RECEIVERS_READ, now))
        wanted = []
        for id_type, identifier in keys:
            did = self._did_of(identifier if id_type == "DID" else None, id_type, identifier, None)
            if did is None or did in self._unreachable or self._has_room(did, chosen.counts, now):
                wanted.append((id_type, identifier))
        if not wanted:
            return []
        return await self.store.fetchall(_DUE_OF_RECEIVERS, (json.dumps(wanted), now, PER_RECEIVER, BATCH))

    async def _rows(self, rowids: "builtins.list[int]") -> dict[int, dict[str, Any]]:
        """The rows a pass chose, as long as they are still pending: one that stopped meanwhile (its receiver was
        revoked, say) is not started."""
        if not rowids:
            return {}
        fetched = await self.store.fetchall(
            f"SELECT rowid, {', '.join(_OUTBOX_COLUMNS)} FROM outbox "
            "WHERE rowid IN (SELECT value FROM json_each(?)) AND status = 'pending'", (json.dumps(rowids),))
        return {raw[0]: _row(raw[1:]) for raw in fetched}

    def _single_only_at(self, did: str, now: float) -> bool:
        """Whether this receiver refused a message of several lately: it gets one notification per message."""
        return self._single_only.get(did, 0.0) > now

    def _one_per_message(self, event_type: str, did: str, now: float) -> bool:
        """A melding goes alone, and so does everything to a receiver that gets one notification per message."""
        return event_type == MELDING_EVENT or self._single_only_at(did, now)

    def _has_room(self, did: str, counts: Counter[str], now: float) -> bool:
        """Whether one more may start to this receiver, with ``counts`` started by this pass so far."""
        return self._flying[did] + counts[did] < self._room_of(did, now)

    def _room_of(self, did: str, now: float) -> int:
        """Deliveries that may be in flight to this receiver: eight messages' worth, or one message's."""
        if self._single_only_at(did, now):  # a message holds one notification
            return PER_RECEIVER // MAX_BATCH
        return PER_RECEIVER if did in self._answered else MAX_BATCH

    async def _deliver_and_record(self, rows: "builtins.list[dict[str, Any]]", did: str) -> None:
        try:
            statements = await (self._deliver(rows[0]) if len(rows) == 1 else self._deliver_batch(rows, did))
            crash_point("after-delivery-before-commit")
            await self.store.write(statements)
        except NodeError as exc:
            log.warning("could not record a delivery: %s", exc.__class__.__name__)
        finally:
            self._finished(rows, did)

    def _finished(self, rows: "builtins.list[dict[str, Any]]", did: str) -> None:
        """A delivery ended. The next pass waits until half the room is free, in all or at a receiver that had rows
        waiting for room, so that one pass starts many deliveries rather than one pass per delivery each reading a
        batch of rows."""
        for row in rows:
            self._in_flight.discard(row["notification_id"])
        self._flying[did] -= len(rows)
        if self._flying[did] <= 0:
            del self._flying[did]
        room_again = did in self._capped and self._flying[did] <= self._room_of(did, time.time()) // 2
        if len(self._in_flight) <= BATCH // 2 or room_again:
            self.wake()

    async def settled(self) -> None:
        """Wait until no delivery is under way (for tests and an orderly stop)."""
        while self._in_flight:
            await asyncio.sleep(0.01)

    def _sender_id(self) -> tuple[str, str]:
        if self.member.role == "client":
            return "DID", self.member.did  # a client has no organisation identifier
        id_type, key = ID_TYPE_OF_ROLE[self.member.role]
        return id_type, self.member.identifiers[key]

    def _message(self, row: dict[str, Any]) -> Notification | Melding:
        if row["event_type"] == MELDING_EVENT:
            payload = row["payload"]
            return Melding(melding_id=row["notification_id"], event_type=MELDING_EVENT, rule=payload["rule"],
                           record=payload["record"], description=payload["description"], endpoint=payload["endpoint"])
        return self._notification(row)

    def _notification(self, row: dict[str, Any]) -> Notification:
        sender_type, sender_id = self._sender_id()
        return Notification(
            notification_id=row["notification_id"], event_type=row["event_type"], timestamp=row["created_at"],
            sender_id_type=sender_type, sender_id=sender_id, receiver_id_type=row["receiver_id_type"],
            receiver_id=row["receiver_id"], subscription_id=row["subscription_id"],
            subjects=tuple(Subject(**s) for s in row["subjects"]),
        )

    async def _deliver(self, row: dict[str, Any]) -> list[Statement]:
        async with self._limit:
            now = int(time.time())
            message = self._message(row)
            did = None
            try:
                url, did = self._receiver(row)
                reply = await self.client.request(url, message, to=did)
                ack = reply.message
                if not isinstance(ack, Ack) or ack.ref != row["notification_id"]:
                    raise PeerRefused("unexpected-reply", "the acknowledgement does not name this notification")
            except PeerRefused as exc:  # it answered (or no peer names it): what waited for it need not wait
                if isinstance(message, Melding) and exc.code in _FINAL_REFUSALS:
                    return self._reached(row, did) + self._refused(row, exc, now)
                return self._reached(row, did) + self._failed(row, str(exc), now)
            except NetworkError as exc:
                return self._unreachable_now(row, did, str(exc), now) if did else self._failed(row, str(exc), now)
            except (NodeError, RemoteProtocolError) as exc:
                return self._reached(row, did) + self._failed(row, str(exc), now)
            finally:
                self._probing.discard(did or "")
        return self._reached(row, did) + self._delivered(row, ack.status, reply, now)

    async def _deliver_batch(self, rows: "builtins.list[dict[str, Any]]", did: str) -> list[Statement]:
        """Several notifications to one receiver in one message; each receipt settles its own row."""
        first = rows[0]
        async with self._limit:
            now = int(time.time())
            try:
                url, did = self._receiver(first)
                message = Notifications(notifications=tuple(self._notification(row) for row in rows))
                reply = await self.client.request(url, message, to=did)
                receipts = reply.message
                if not isinstance(receipts, Receipts) or \
                        [r.ref for r in receipts.receipts] != [row["notification_id"] for row in rows]:
                    raise PeerRefused("unexpected-reply", "the receipts do not name these notifications")
            except PeerRefused as exc:
                if exc.code == ErrorCode.UNSUPPORTED.value:  # an older node: the rows stay due, and go one by one
                    log.info("%s does not know batched notifications: sending one at a time", did[-8:])
                    self._single_only[did] = time.time() + SINGLE_ONLY_FOR
                    self.wake()
                    return self._reached(first, did)
                return self._reached(first, did) + [s for row in rows for s in self._failed(row, str(exc), now)]
            except NetworkError as exc:
                return self._unreachable_now(first, did, str(exc), now)  # the others wait with the rest
            except (NodeError, RemoteProtocolError) as exc:
                return self._reached(first, did) + [s for row in rows for s in self._failed(row, str(exc), now)]
            finally:
                self._probing.discard(did)
        statements = self._reached(first, did)
        for row, receipt in zip(rows, receipts.receipts):
            if receipt.status == "refused":
                statements += self._failed(row, str(PeerRefused(str(receipt.code), str(receipt.reason))), now)
            else:
                statements += self._delivered(row, receipt.status, reply, now)
        return statements

    def _delivered(self, row: dict[str, Any], status: str, reply: Incoming, now: int) -> list[Statement]:
        self.metrics.count_request("notification-sent", "delivered")
        self.delivered_since_start += 1
        return [
            ("UPDATE outbox SET status = 'delivered', delivered_at = ?, attempts = attempts + 1, last_error = NULL "
             "WHERE notification_id = ?", (now, row["notification_id"]), False),
            self.audit.entry(now=now, event=f"notification.sent {row['event_type']}", action="E", result=status,
                             actor=Actor.of(reply.sender), record=row["subjects"][0]["record_id"],
                             trace_id=reply.envelope.trace_id, rule=row["notification_id"]),
        ]

    def _address(self, did: str | None, id_type: str, identifier: str, url: str | None) -> tuple[str, str] | None:
        """(url, did) of a receiver, from a row's columns: from the peer table, or for a client's node the endpoint it
        subscribed with; None when neither names it yet."""
        peer = self._peer(did, id_type, identifier)
        if peer is not None:
            return peer.url, peer.did
        return (url, did) if did and url else None

    def _did_of(self, did: str | None, id_type: str, identifier: str, url: str | None) -> str | None:
        address = self._address(did, id_type, identifier, url)
        return address[1] if address is not None else None

    def _receiver(self, row: dict[str, Any]) -> tuple[str, str]:
        address = self._address(row["receiver_did"], row["receiver_id_type"], row["receiver_id"], row["receiver_url"])
        if address is None:
            raise PeerRefused("unavailable", f"no peer with {row['receiver_id_type']} {row['receiver_id']} is known")
        return address

    def _peer(self, did: str | None, id_type: str, identifier: str) -> Peer | None:
        return self.peers.get(did) if did else self.peers.by_identifier(id_type.lower(), identifier)

    def _refused(self, row: dict[str, Any], exc: PeerRefused, now: int) -> list[Statement]:
        self.metrics.count_request("notification-sent", "refused")
        return [
            ("UPDATE outbox SET attempts = attempts + 1, status = 'refused', last_error = ? WHERE notification_id = ?",
             (str(exc)[:500], row["notification_id"]), False),
            self.audit.entry(now=now, event=f"notification.refused {row['event_type']}", action="E", result=exc.code,
                             actor=Actor.of(self.member), record=row["subjects"][0]["record_id"], rule=exc.rule),
        ]

    def _failed(self, row: dict[str, Any], reason: str, now: int) -> list[Statement]:
        log.info("notification %s not delivered (attempt %d): %s", row["notification_id"], row["attempts"] + 1, reason)
        return [self._backoff(row, reason, now)]

    def _unreachable_now(self, row: dict[str, Any], did: str, reason: str, now: int) -> list[Statement]:
        """The receiver did not answer: what else waits for it is due when this one is tried again, and what is
        older than dead_after ends now, so that one probe speaks for them all."""
        delay = min(self.max_delay, self.probe_max_delay, self.first_delay * 2 ** row["attempts"])
        statement, next_attempt = self._backoff_until(row, reason, now, delay=delay)
        self._unreachable[did] = next_attempt
        self._answered.discard(did)
        others, params = self._others_of(did, row)
        return [statement,
                (f"UPDATE outbox SET next_attempt_at = ? WHERE {others}", (next_attempt, *params), False),
                (f"UPDATE outbox SET status = 'dead', last_error = ? WHERE {others} AND created_at <= ? AND {_MAY_END}",
                 (reason[:500], *params, now - self.dead_after), False)]

    def _reached(self, row: dict[str, Any], did: str | None) -> list[Statement]:
        """The receiver answered, whatever it said: what waited for the probe is due now (as in _due_now)."""
        if did is not None:
            self._answered.add(did)
        if did is None or did not in self._unreachable:
            return []
        del self._unreachable[did]
        self.wake()
        others, params = self._others_of(did, row)
        return [(f"UPDATE outbox SET next_attempt_at = ? WHERE {others}", (time.time(), *params), False)]

    def _no_peer_yet(self, row: dict[str, Any], now: int) -> Statement:
        """No peer names the receiver (any more): the row waits until one does, and then peer_back makes it due at
        once."""
        return self._backoff_until(row, NO_PEER_YET, now, until=WAITING)[0]

    def _backoff(self, row: dict[str, Any], reason: str, now: int) -> Statement:
        return self._backoff_until(row, reason, now)[0]

    def _backoff_until(self, row: dict[str, Any], reason: str, now: int,
                       delay: float | None = None, until: float | None = None) -> tuple[Statement, float]:
        """The row's next attempt, after ``delay`` or doubling up to max_delay, or at ``until`` (or its end as
        dead), and when."""
        attempts = row["attempts"] + 1
        dead = now - row["created_at"] >= self.dead_after and row["event_type"] not in KEPT_TRYING
        if delay is None:
            delay = min(self.max_delay, self.first_delay * 2 ** (attempts - 1))
        next_attempt = time.time() + delay if until is None else until
        self.metrics.count_request("notification-sent", "dead" if dead else "retry")
        # Only while it is pending: one stopped while this attempt was under way (its receiver revoked) stays stopped.
        return ("UPDATE outbox SET attempts = ?, next_attempt_at = ?, status = ?, last_error = ? "
                "WHERE notification_id = ? AND status = 'pending'",
                (attempts, next_attempt, "dead" if dead else "pending", reason[:500], row["notification_id"]), False), next_attempt

    # Operator commands ------------------------------------------------------------

    async def list(self, status: str | None = None, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
        """Notifications, newest first, a page at a time."""
        listed = _LISTED.get(status or "")
        where, params = (listed, ()) if listed is not None else ("WHERE status = ?", (status,))
        rows = await self.store.fetchall(
            f"SELECT {', '.join(_OUTBOX_COLUMNS)} FROM outbox {where} ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (*params, limit, offset))
        return [_row(r) for r in rows]

    @staticmethod
    def stop_for(dids: "builtins.list[str]") -> Statement:
        """Revoked members: what is pending for them by did ends as a dead letter (rows addressed by identifier
        wait for a valid member with that identifier)."""
        marks = ", ".join("?" * len(dids))
        return (f"UPDATE outbox SET status = 'dead', last_error = 'the receiver was revoked' "
                f"WHERE status = 'pending' AND receiver_did IN ({marks})", tuple(dids), False)

    @staticmethod
    def stop_subscriptions(ended: "builtins.list[tuple[str, str]]", why: str) -> Statement:
        """Subscriptions (id, the subscriber's did) that ended: what is pending by them ends as a dead letter."""
        return ("UPDATE outbox SET status = 'dead', last_error = ? WHERE status = 'pending' AND receiver_did = ? "
                "AND subscription_id = ?", [(why, d, i) for i, d in ended], True)

    @staticmethod
    def move_to(pairs: "builtins.list[tuple[str, str]]") -> "builtins.list[Statement]":
        """Members that moved to a new key: what waits for the old did goes to the new one."""
        return [("UPDATE outbox SET receiver_did = ?, next_attempt_at = 0 WHERE status = 'pending' AND receiver_did = ?",
                 (new, old), False) for old, new in pairs]

    async def forget_delivered(self, before: int, *, dry_run: bool = False) -> int:
        """Retention: notifications delivered or refused before ``before`` go (meldingen stay: they are followed)."""
        # A row is delivered after it was made: created_at < ? says so too, and lets the index on it (outbox_newest)
        # read only what is old enough, not the whole outbox.
        where = ("WHERE created_at < ? AND status IN ('delivered', 'refused') AND coalesce(delivered_at, created_at) < ? "
                 "AND event_type != ?")
        params = (before, before, MELDING_EVENT)
        row = await self.store.fetchone(f"SELECT count(*) FROM outbox {where}", params)
        count = int(row[0]) if row else 0
        if count and not dry_run:
            await self.store.delete_in_slices("outbox", where, params, count)
        return count

    async def stats(self) -> dict[str, int]:
        """Notifications waiting and given up: counted in their partial indexes, never by reading the table
        (delivered ones, the bulk of it, are not counted), and beside the writer (Store.read_aside)."""
        [(pending, dead)] = await self.store.read_aside(
            "SELECT (SELECT count(*) FROM outbox WHERE status = 'pending'), "
            "(SELECT count(*) FROM outbox WHERE status = 'dead')")
        return {"pending": int(pending), "dead": int(dead), "delivered_since_start": self.delivered_since_start}

    async def retry(self, notification_id: str | None) -> int:
        """Put dead letters (one, or all) back in the queue, due now."""
        where, params = ("AND notification_id = ?", (notification_id,)) if notification_id else ("", ())
        rows = await self.store.fetchall(f"SELECT notification_id FROM outbox WHERE status = 'dead' {where}", params)
        if rows:
            await self.store.write([(
                f"UPDATE outbox SET status = 'pending', next_attempt_at = 0, created_at = ? WHERE status = 'dead' {where}",
                (int(time.time()), *params), False)])
            self.wake()
        return len(rows)


__all__ = ["Outbox"]
