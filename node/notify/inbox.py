"""The inbox: the receiving side of notifications.

A notification is checked against the event table (sender role, receiver type
and identity), stored once (a duplicate id is acknowledged and ignored),
acknowledged, and then acted on: by default the node fetches the record from
its source with the matching query template, and keeps what it learned
(version, status), not a copy of the record.

A notification is a hint its sender signs at will; what the receiver does for
it is bounded. A fetch that failed is asked again after a pause that doubles
(2 s to 5 minutes), at once when the source answers again; a retry pass starts
a page of what is due; and what waits for one sender to be asked is at most
PENDING_PER_SENDER rows: past that its notifications are refused "not now" and
wait in its own outbox, so that a sender that tells and never lets itself be
asked fills no inbox.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from keys import Member, TrustStore
from node.discovery.routing import Fetched, Verified
from node.errors import NodeError, PeerRefused, ValidationError
from node.faults import crash_point
from node.interfaces import Handlers
from node.notify.consents import consent_ended
from node.notify.events import ID_TYPE_OF_ROLE
from node.store import Actor, AuditLog, HeldEvidence, Statement, Store
from node.tasks import Spawn
from protocol import (
    MAX_BATCH, Ack, ErrorCode, Incoming, Message, Notification, Notifications, Receipt, Receipts, RemoteProtocolError, Subject,
)
from protocol.events import EVENT_RULES
from protocol.records import verify_record

log = logging.getLogger(__name__)
PENDING_PER_SENDER = 10_000  # notifications of one sender not yet acted on (received, or their fetch failed)
RETRY_PAGE = 4096  # notifications a retry pass starts at most
RETRY_FIRST, RETRY_MAX = 2.0, 300.0  # seconds before a failed fetch is asked again: doubling, at most 5 minutes
# A notification being acted on is due again only after this: its act ends in seconds, or was cut short.
ACT_GRACE = 60.0
EVIDENCE_PAGE = 256  # held evidence checked per read: 256 signature checks (~15-30 ms) between two turns of the loop

# How a receiver fetches what a notification is about: template and parameters.
FETCH: dict[str, Callable[[dict[str, str], dict[str, str]], tuple[str, dict[str, str]] | None]] = {
    "INDICATIE_ZORGKANTOOR": lambda ids, mine: ("QIR-0001-ZKi", {"wlzIndicatieID": ids["WlzIndicatie"], "uzovi": mine["uzovi"]}),
    "BEMIDDELINGSPECIFICATIE_ZORGAANBIEDER": lambda ids, mine: (
        "QBR-0001-ZA", {"bemiddelingspecificatieID": ids["Bemiddelingspecificatie"], "instelling": mine["agb"]}),
    "BEMIDDELINGSPECIFICATIE_ZORGKANTOOR": lambda ids, mine: ("QBR-0007-ZK", {"bemiddelingID": ids["Bemiddeling"], "uzovi": mine["uzovi"]}),
    "OVERDRACHT_ZORGKANTOOR": lambda ids, mine: ("QBR-0007-ZK", {"bemiddelingID": ids["Bemiddeling"], "uzovi": mine["uzovi"]}),
    "LEVERING_ZORGKANTOOR": lambda ids, mine: ("QLR-0002-ZK", {"leveringID": ids["Levering"], "uzovi": mine["uzovi"]}),
    "LEVERING_CAK": lambda ids, mine: ("QLR-0003-CAK", {"leveringID": ids["Levering"], "kvk": mine["kvk"]}),
    "VERZOEKAANBIEDER_AANBIEDER": lambda ids, mine: ("QLR-0004-ZA", {"leveringID": ids["Levering"], "agb": mine["agb"]}),
    "VERZOEKANTWOORD_AANBIEDER": lambda ids, mine: ("QLR-0005-ZA", {"antwoordID": ids["VerzoekAntwoord"], "agb": mine["agb"]}),
    "MELDING_MELDER": lambda ids, mine: ("MELDING-STATUS", {"meldingID": ids["Melding"]}),
}
# How a holder fetches a piece of evidence again from its source: template and parameters.
REFETCH: dict[str, Callable[[str, dict[str, str]], tuple[str, dict[str, str]] | None]] = {
    "Bemiddelingspecificatie": lambda record_id, mine: (
        ("QBR-0001-ZA", {"bemiddelingspecificatieID": record_id, "instelling": mine["agb"]}) if "agb" in mine else None),
    "Bemiddeling": lambda record_id, mine: (
        ("QBR-0007-ZK", {"bemiddelingID": record_id, "uzovi": mine["uzovi"]}) if "uzovi" in mine else None),
}
Effect = Callable[[Notification, Member, int], list[Statement]]
# What the node keeps of the records it fetched; ValidationError: a record it cannot take (the notification is refused).
KeepFetched = Callable[[Verified], Awaitable[None]]
# The member a source is now, by its organisation identifier (e.g. uzovi:5151), as the peer table knows it.
CurrentMember = Callable[[str], tuple[str, bytes] | None]
# Asks a source with a template: (source did, template, params, evidence) -> (verified records, the evidence backing them).
Fetch = Callable[[str, str, dict[str, str], list[bytes]], Awaitable[Fetched]]
# Asks a source several queries at once: (source did, [(template, params, evidence)]) -> per query, what it brought
# or the PeerRefused it would have raised alone.
FetchMany = Callable[[str, list[tuple[str, dict[str, str], list[bytes]]]], Awaitable[list[Fetched | NodeError]]]


def _rejected(exc: Exception) -> tuple[str, None, str]:
    log.error("a notification could not be acted on (%s); it is marked rejected", exc.__class__.__name__)
    return "rejected", None, f"could not be acted on: {exc.__class__.__name__}"


@dataclass(frozen=True, slots=True)
class _Received:
    notification_id: str
    event_type: str
    subjects: tuple[Subject, ...]


class Inbox:
    """The receiving side: check, store once, acknowledge, then act on it."""

    def __init__(self, *, store: Store, audit: AuditLog, member: Member, fetch: Fetch, fetch_many: FetchMany, spawn: Spawn,
                 trust: TrustStore, current_member: CurrentMember, fetch_back: bool = True,
                 effects: dict[str, Effect] | None = None, fetched: list[KeepFetched] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.audit = audit
        self.member = member
        self.fetch = fetch
        self.fetch_many = fetch_many
        self.spawn = spawn
        self.fetch_back = fetch_back
        self.held = HeldEvidence(store)
        self.trust = trust
        self.current_member = current_member
        self.effects = effects or {}  # event type -> what receiving it changes, in the same transaction
        # What the node does with the records it fetched back (the CAK: its eigen bijdrage; a reporter: the answer).
        self.fetched = fetched or []
        self._acting: set[str] = set()  # notification ids being acted on, so a retry does not start a second
        self._not_answering: set[str] = set()  # sources a fetch from failed lately: what waits is due once they answer
        self.clock = clock

    def handlers(self) -> Handlers:
        return {Notification: self._on_notification, Notifications: self._on_notifications}

    async def _on_notification(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        return await self.receive(incoming, now), []

    def _check(self, incoming: Incoming, note: Notification) -> None:
        rule = EVENT_RULES[note.event_type]
        sender = incoming.sender
        if rule.sender_role not in ("*", sender.role):
            raise RemoteProtocolError(ErrorCode.DENIED, f"a {sender.role} node may not send {note.event_type}",
                                      rule="NOTIFICATION-SENDER-ROLE")
        sender_type, key = ID_TYPE_OF_ROLE.get(sender.role, ("", ""))
        own = {("DID", sender.did)} if sender.role == "client" else {(sender_type, v) for v in sender.identifier_values(key)}
        if (note.sender_id_type, note.sender_id) not in own:
            raise RemoteProtocolError(ErrorCode.DENIED, "afzender does not match the sender's certificate",
                                      rule="NOTIFICATION-SENDER-ID")
        if note.subscription_id is None and rule.receiver_id_type != "*" and note.receiver_id_type != rule.receiver_id_type:
            raise RemoteProtocolError(ErrorCode.DENIED, f"{note.event_type} is not sent to a {note.receiver_id_type}",
                                      rule="NOTIFICATION-RECEIVER-TYPE")
        mine = {self.member.did} if note.receiver_id_type == "DID" else set(self.member.identifier_values(note.receiver_id_type.lower()))
        if note.receiver_id not in mine:
            raise RemoteProtocolError(ErrorCode.WRONG_RECIPIENT, "the notification names another receiver",
                                      rule="NOTIFICATION-RECEIVER-ID")

    async def receive(self, incoming: Incoming, now: int) -> Ack:
        note = incoming.message
        assert isinstance(note, Notification)
        self._check(incoming, note)
        known = await self.store.fetchone("SELECT 1 FROM inbox WHERE notification_id = ?", (note.notification_id,))
        if known:
            return Ack(ref=note.notification_id, status="duplicate")
        if await self._room(incoming.sender.did) <= 0:
            raise self._no_room()
        await self._store_and_act(incoming, [note], now)
        return Ack(ref=note.notification_id, status="accepted")

    async def _on_notifications(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        """A batch: each notification checked, stored and acknowledged as if alone; what is stored commits together
        (or not at all), and is then acted on together, so that its fetches go to the source in batches too."""
        batch = incoming.message
        assert isinstance(batch, Notifications)
        ids = [note.notification_id for note in batch.notifications]
        known = {row[0] for row in await self.store.fetchall(
            f"SELECT notification_id FROM inbox WHERE notification_id IN ({', '.join('?' * len(ids))})", tuple(ids))}
        receipts: list[Receipt] = []
        stored: list[Notification] = []
        room = await self._room(incoming.sender.did)
        for note in batch.notifications:
            try:
                self._check(incoming, note)
            except RemoteProtocolError as exc:
                receipts.append(Receipt(ref=note.notification_id, status="refused", code=exc.code.value, reason=exc.reason))
                continue
            if note.notification_id in known:
                receipts.append(Receipt(ref=note.notification_id, status="duplicate", code=None, reason=None))
                continue
            if len(stored) >= room:
                refusal = self._no_room()
                receipts.append(Receipt(ref=note.notification_id, status="refused", code=refusal.code.value,
                                        reason=refusal.reason))
                continue
            stored.append(note)
            receipts.append(Receipt(ref=note.notification_id, status="accepted", code=None, reason=None))
        if stored:
            await self._store_and_act(incoming, stored, now)
        return Receipts(receipts=tuple(receipts)), []

    async def _room(self, sender_did: str) -> int:
        """How many more of this sender's notifications may wait here to be acted on (two messages of one sender
        that arrive together may both take the last room: the bound holds to a message)."""
        row = await self.store.fetchone(_WAITING_OF_SENDER, (sender_did, PENDING_PER_SENDER))
        return PENDING_PER_SENDER - (int(row[0]) if row else 0)

    @staticmethod
    def _no_room() -> RemoteProtocolError:
        return RemoteProtocolError(ErrorCode.UNAVAILABLE, f"{PENDING_PER_SENDER} of your notifications wait here to be "
                                   "fetched from you: send this one again later", rule="NOTIFICATIONS-WAITING")

    async def _store_and_act(self, incoming: Incoming, notes: list[Notification], now: int) -> None:
        """Store checked notifications in one commit, then act on them (in the background)."""
        await self.store.write([s for note in notes for s in self._stored(incoming, note, now)])
        crash_point("after-inbox-commit")
        self._start([_Received(n.notification_id, n.event_type, n.subjects) for n in notes], incoming.sender.did, now)

    def _stored(self, incoming: Incoming, note: Notification, now: int) -> list[Statement]:
        """What receiving one notification writes: its effect, its inbox row and its audit entry."""
        subjects = json.dumps([{"subject": s.subject, "record_id": s.record_id} for s in note.subjects])
        effect = self.effects.get(note.event_type)
        return [
            *(effect(note, incoming.sender, now) if effect is not None else []),
            ("INSERT OR IGNORE INTO inbox (notification_id, sender_did, sender_org, event_type, subjects, received_at, status, "
             "next_attempt_at, subscription_id) VALUES (?, ?, ?, ?, ?, ?, 'received', ?, ?)",
             (note.notification_id, incoming.sender.did, incoming.sender.organisation, note.event_type, subjects, now,
              now + ACT_GRACE, note.subscription_id), False),
            self.audit.entry(now=now, event=f"notification.received {note.event_type}", action="C", result="stored",
                             actor=Actor.of(incoming.sender), record=note.subjects[0].record_id,
                             trace_id=incoming.envelope.trace_id, rule=note.notification_id, request=incoming.data),
        ]

    def _start(self, received: list[_Received], source_did: str, now: float) -> None:
        """Act on notifications from one source in one task (those already being acted on are left to that)."""
        fresh = [r for r in received if r.notification_id not in self._acting]
        if not fresh:
            return
        self._acting.update(r.notification_id for r in fresh)
        task = self.spawn(self._act_all(fresh, source_did, now), "inbox-act")
        task.add_done_callback(lambda _: self._acting.difference_update(r.notification_id for r in fresh))

    async def _act_all(self, received: list[_Received], source_did: str, now: float) -> None:
        """Act on notifications from one source: what they are about is fetched in batched queries; each ends as
        fetched, noted, refused or rejected with the reason on its own, never stuck. A fetch that failed is asked
        again after its pause (from ``now``, when the act began). A store that fails leaves a row as it was, to be
        acted on again later."""
        outcomes: dict[str, tuple[str, int | None, str]] = {}  # notification id -> (status, version, detail)
        plans: dict[str, tuple[str, dict[str, str]]] = {}
        for item in received:
            try:
                plan = self._plan(item.event_type, item.subjects)
            except Exception as exc:  # noqa: BLE001 - whatever went wrong, the row gets a final, visible state
                outcomes[item.notification_id] = _rejected(exc)
                continue
            if isinstance(plan, str):
                outcomes[item.notification_id] = ("noted", None, plan)
            else:
                plans[item.notification_id] = plan
        fetched = dict(zip(plans, await self._fetch_all(source_did, list(plans.values()))))
        # In one commit with the outcomes: what waited for a source that answers again, and the evidence fetched
        kept = self._answering(source_did, fetched.values())
        for notification_id, (template, _) in plans.items():
            outcome = fetched[notification_id]
            if not isinstance(outcome, NodeError):
                kept.extend(self.held.keep(outcome[0] + outcome[1]))
            try:
                outcomes[notification_id] = await self._settle(template, outcome)
            except NodeError as exc:
                log.warning("a notification could not be acted on now: %s", exc.__class__.__name__)
            except Exception as exc:  # noqa: BLE001 - as above
                outcomes[notification_id] = _rejected(exc)
        try:
            await self.store.write(kept + [_settled(notification_id, *outcome, now)
                                           for notification_id, outcome in outcomes.items()])
        except NodeError as exc:
            log.warning("notifications could not be acted on now: %s", exc.__class__.__name__)

    def _answering(self, source_did: str, outcomes: Iterable[Fetched | NodeError]) -> list[Statement]:
        """Whether the source answered: one that did not is remembered; one that answers again after that has
        what waited for it made due now (it was paused for a source that did not answer)."""
        if any(_not_answered(outcome) for outcome in outcomes):
            self._not_answering.add(source_did)
            return []
        if source_did not in self._not_answering:
            return []
        self._not_answering.discard(source_did)
        return [(f"UPDATE inbox SET next_attempt_at = 0 WHERE sender_did = ? AND {_WAITING} AND status = 'fetch-failed'",
                 (source_did,), False)]

    def _plan(self, event_type: str, subjects: tuple[Subject, ...]) -> tuple[str, dict[str, str]] | str:
        """The query (template, parameters) that fetches what a notification is about, or why none is asked."""
        if event_type.startswith("VERWIJDERDE"):
            return "the record was deleted at its source"
        ids = {}
        for subject in subjects:
            for path in (subject.subject, subject.record_id):
                kind, _, ident = path.partition("/")
                ids[kind] = ident
        fetch = FETCH.get(event_type.split("_", 1)[1])
        # A subscriber of another role may not read what it is told about: it only notes it.
        fits = EVENT_RULES[event_type].receiver_role in ("*", self.member.role)
        request = fetch(ids, dict(self.member.identifiers)) if fetch is not None and fits and self.fetch_back else None
        return request if request is not None else "nothing to fetch for this event type"

    async def _fetch_all(self, source_did: str, requests: list[tuple[str, dict[str, str]]]) -> list[Fetched | NodeError]:
        if not requests:
            return []
        held = await self.held.about_many([i for _, params in requests if (i := params.get("wlzIndicatieID"))])
        asked = [(template, params, held.get(params.get("wlzIndicatieID", ""), [])) for template, params in requests]
        try:
            return await self.fetch_many(source_did, asked)
        except NodeError as exc:  # nothing came back: each ends as that one would have alone
            return [exc] * len(requests)

    async def _settle(self, template: str, outcome: Fetched | NodeError) -> tuple[str, int | None, str]:
        """(status, version fetched, detail) of one notification, after the node's own uses of what it fetched."""
        if _not_answered(outcome):
            return "fetch-failed", None, str(outcome)[:300]
        if isinstance(outcome, NodeError):
            # The source answered and said no: asking again will not change that.
            return "refused", None, str(outcome)[:300]
        results, _ = outcome
        try:
            for keep in self.fetched:
                await keep(results)
        except ValidationError as exc:
            # The source signed a record this node cannot take: asking again brings the same record.
            return "refused", None, f"what the source answered cannot be kept here: {str(exc)[:250]}"
        version = max((r.version for r, _, _ in results), default=None)
        return "fetched", version, f"{template}: {len(results)} record(s)"

    # Evidence that must outlive its signer's certificate -------------------------------

    async def refresh_evidence(self, *, now: int, margin: int) -> int:
        """Fetch again, from its source, held evidence whose signer's certificate ends within ``margin`` seconds,
        or that its source now signs under another certificate or key (renewed, rotated, revoked). A client's
        consent that ended goes (it names his BSN and opens nothing; nothing fetches it again)."""
        refreshed = 0
        ended: list[str] = []
        async for kind, record_id, indicatie, signed, source, source_org in self._held_pages():
            if kind == "Toestemming":
                if consent_ended(bytes(signed), self.trust, now):
                    ended.append(record_id)
                continue
            if not self._stale(bytes(signed), source_org, now + margin):
                continue
            refetch = REFETCH.get(kind)
            request = refetch(record_id, dict(self.member.identifiers)) if refetch else None
            if request is None or not source_org:
                continue
            try:
                results, backing = await self.fetch(source_org, request[0], request[1], await self.held.about(indicatie))
            except NodeError as exc:
                log.info("could not refresh held evidence from %s: %s", source_org, exc.__class__.__name__)
                continue
            kept = self.held.keep(results + backing)
            if kept:
                await self.store.write(kept)
                refreshed += 1
        if ended:
            await self.store.write([HeldEvidence.forget_ended_consents(ended)])
        return refreshed

    async def _held_pages(self) -> AsyncIterator[Any]:
        """Every piece of held evidence, a page at a time: a holder of a whole region's records neither reads them
        all into memory at once nor checks them all in one go while peers wait (each check verifies a signature).
        A row refreshed meanwhile comes again later under its new rowid, and is then found current."""
        after = 0
        while True:
            rows = await self.store.fetchall(
                "SELECT rowid, kind, record_id, wlzIndicatieID, signed, source, source_org FROM evidence "
                "WHERE rowid > ? ORDER BY rowid LIMIT ?", (after, EVIDENCE_PAGE))
            for row in rows:
                yield row[1:]
            if len(rows) < EVIDENCE_PAGE:
                return
            after = rows[-1][0]

    def _stale(self, signed: bytes, source_org: str | None, then: int) -> bool:
        try:
            _, signer = verify_record(signed, self.trust, then)
        except RemoteProtocolError:
            return True
        current = self.current_member(source_org) if source_org else None
        return current is not None and current != (signer.did, signer.cert_id)

    async def retry_failed(self, now: float | None = None) -> int:
        """Act on what is due, a page at a time: fetches that failed whose pause is over, and notifications stored
        whose act was cut short. Those it starts are not due again for ACT_GRACE (those being acted on right now
        are skipped). Returns how many it started."""
        now = self.clock() if now is None else now
        rows = await self.store.fetchall(_DUE, (now, RETRY_PAGE))
        if not rows:
            return 0
        await self.store.write([("UPDATE inbox SET next_attempt_at = ? WHERE notification_id IN (SELECT value FROM json_each(?))",
                                 (now + ACT_GRACE, json.dumps([row[0] for row in rows])), False)])
        by_source: dict[str, list[_Received]] = {}
        for notification_id, sender_did, event_type, subjects in rows:
            if notification_id not in self._acting:
                parsed = tuple(Subject(**item) for item in json.loads(subjects))
                by_source.setdefault(sender_did, []).append(_Received(notification_id, event_type, parsed))
        for sender_did, received in by_source.items():
            for start in range(0, len(received), MAX_BATCH):
                self._start(received[start:start + MAX_BATCH], sender_did, now)
        return sum(len(received) for received in by_source.values())

    async def resume(self) -> int:
        """At start: what was stored but not acted on (the node stopped in between) is due now."""
        await self.store.write([(f"UPDATE inbox SET next_attempt_at = 0 WHERE {_WAITING} AND status = 'received'", (), False)])
        return await self.retry_failed()

    async def forget_done(self, before: int, *, dry_run: bool = False) -> int:
        """Retention: notifications received before ``before`` and acted on (or refused, or rejected) go."""
        where = "WHERE status NOT IN ('received', 'fetch-failed') AND received_at < ?"
        row = await self.store.fetchone(f"SELECT count(*) FROM inbox {where}", (before,))
        count = int(row[0]) if row else 0
        if count and not dry_run:
            await self.store.delete_in_slices("inbox", where, (before,), count)
        return count

    async def waiting(self) -> dict[str, int]:
        """Notifications not yet acted on, by status: counted in the partial index of what waits (bounded by
        PENDING_PER_SENDER a sender, never the history), beside the writer."""
        [(received, failed)] = await self.store.read_aside(
            f"SELECT (SELECT count(*) FROM inbox WHERE {_WAITING} AND status = 'received'), "
            f"(SELECT count(*) FROM inbox WHERE {_WAITING} AND status = 'fetch-failed')")
        return {"received": int(received), "fetch-failed": int(failed)}

    async def list(self, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
        """Notifications received, newest first, a page at a time."""
        keys = ("notification_id", "sender_did", "sender_org", "event_type", "subjects", "received_at", "status",
                "fetched_version", "detail", "attempts", "next_attempt_at")
        rows = await self.store.fetchall(
            f"SELECT {', '.join(keys)} FROM inbox ORDER BY received_at DESC, rowid DESC LIMIT ? OFFSET ?", (limit, offset))
        return [dict(zip(keys, row)) | {"subjects": json.loads(row[4])} for row in rows]


def _settled(notification_id: str, status: str, version: int | None, detail: str, began: float) -> Statement:
    """A notification's outcome; a fetch that failed is due again after a pause that doubles with each failure."""
    if status != "fetch-failed":
        return ("UPDATE inbox SET status = ?, fetched_version = ?, detail = ? WHERE notification_id = ?",
                (status, version, detail, notification_id), False)
    return ("UPDATE inbox SET status = ?, fetched_version = ?, detail = ?, attempts = attempts + 1, "
            "next_attempt_at = ? + min(?, ? * (1 << min(attempts, 20))) WHERE notification_id = ?",
            (status, version, detail, began, RETRY_MAX, RETRY_FIRST, notification_id), False)


def _not_answered(outcome: Fetched | NodeError) -> bool:
    """The source did not answer, or said "not now": a fetch to try again later (any other refusal is final)."""
    return isinstance(outcome, NodeError) and (not isinstance(outcome, PeerRefused) or outcome.code == ErrorCode.UNAVAILABLE)


# What waits to be acted on: the condition of the inbox's partial indexes, which a query must name as it is written
# here for SQLite to use them.
_WAITING = "(status = 'received' OR status = 'fetch-failed')"
_DUE = (f"SELECT notification_id, sender_did, event_type, subjects FROM inbox WHERE {_WAITING} AND next_attempt_at <= ? "
        "ORDER BY next_attempt_at LIMIT ?")
_WAITING_OF_SENDER = f"SELECT count(*) FROM (SELECT 1 FROM inbox WHERE sender_did = ? AND {_WAITING} LIMIT ?)"

__all__ = ["Inbox", "FETCH"]
