"""Voluntary subscriptions at a source (never built in the real network), checked against the matrix.

A subscriber is told only of changes to records it has a relation with (the
matrix names the relation per event type and role), so a subscription never
tells a party about a client it has no relation with.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Protocol

from keys import Member
from node.interfaces import Handlers
from node.notify.events import ID_TYPE_OF_ROLE, Planned
from node.store import RECORD_TYPES, Actor, AuditLog, Statement, Store, bsn_of, values_at
from node.store.records import day_of
from protocol import Ack, ErrorCode, Incoming, RemoteProtocolError, Subscribe, Unsubscribe
from protocol.events import EVENT_RULES
from protocol.records import RecordVersion

IsClient = Callable[[Member, str, bytes | None], bool]  # the client with this BSN (his certificate's commitment, the key he sent)
# What a machtiging must cover for his gemachtigde to follow his records: being told of their changes is his data.
FOLLOWS_BY = "CLIENT-EIGEN-GEGEVENS"


class Signed(Protocol):
    @property
    def record(self) -> RecordVersion: ...

    @property
    def signer(self) -> Member: ...


# (gemachtigde, the client's BSN, what a machtiging must cover, the machtiging presented, now) -> the machtiging, or
# why it lets her do nothing (the policy's check, as for a query)
MachtigingFor = Callable[[Member, str, str, bytes, int], Awaitable[Signed | str]]
# (a machtiging, signed as presented, now) -> whether his node says it still stands (None: it could not be asked)
Stands = Callable[[bytes, int], Awaitable[bool | None]]
ASKED_AT_ONCE = 64  # machtigingen asked after together (the confirmations bound what goes to clients' nodes at once)

MAX_PER_MEMBER = 32  # subscriptions a member holds here: a few event sets for an organisation, one for a client
_COLUMNS = ("subscription_id", "subscriber_did", "subscriber_org", "receiver_id_type", "receiver_id", "events", "created_at")
# (authority name, record kind, record data) -> the parties that hold, held or were handed it
Parties = Callable[[str, str, dict[str, Any]], Awaitable[set[str]]]


class Subscriptions:
    def __init__(self, *, store: Store, audit: AuditLog, role: str, matrix: dict[str, Any], parties: Parties,
                 is_client: IsClient, machtiging_for: MachtigingFor, stands: Stands,
                 is_revoked: Callable[[bytes], bool]) -> None:
        self.store = store
        self.audit = audit
        self.role = role
        self.matrix = matrix  # policy.json "subscriptions"
        self.parties = parties
        self.is_client = is_client
        self.machtiging_for = machtiging_for
        self.stands = stands
        self.is_revoked = is_revoked  # a certificate's id: a machtiging signed under one revoked since ends

    def handlers(self) -> Handlers:
        return {Subscribe: self.subscribe, Unsubscribe: self.unsubscribe}

    async def all(self) -> list[dict[str, Any]]:
        rows = await self.store.fetchall(f"SELECT {', '.join(_COLUMNS)} FROM subscriptions ORDER BY created_at")
        return [dict(zip(_COLUMNS, r)) | {"events": json.loads(r[5])} for r in rows]  # never the bsn

    # Planning, inside the record's transaction ---------------------------------

    async def planned_for(self, kind: str, changes: list[tuple[dict[str, Any], list[Planned]]],
                          now: int) -> list[list[Planned]]:
        """The notifications subscribers get for each change: those of their event types, about a record they have a
        relation with, and not already going to them; a gemachtigde's while the machtiging she follows by holds.
        One query for a whole batch."""
        bsns = {bsn_of(data) for data, planned in changes if planned} - {None}
        if not any(planned for _, planned in changes):
            return [[] for _ in changes]
        today = day_of(now)
        # A subscription rests on its subscriber's certificate (a client's: while it holds) and, by a machtiging, on
        # its signer's and its geldigTot.
        rows = [row[:7] for row in await self._subscriptions(sorted(str(b) for b in bsns))
                if not self._revoked(row[7], row[8]) and (row[9] is None or row[9] >= today)
                and (row[10] is None or row[10] >= now)]
        out: list[list[Planned]] = []
        for data, planned in changes:
            bsn = bsn_of(data)
            extra = []
            # A receiver hears of a change once, however many of its subscriptions (or the planned notification
            # itself) name it.
            going = {(p.receiver_id_type, p.receiver_id, p.event_type) for p in planned}
            for subscription_id, did, id_type, receiver_id, events, client_bsn, endpoint in rows:
                if client_bsn is not None and client_bsn != bsn:
                    continue  # a client hears only of his own records
                wanted = set(json.loads(events))
                for p in planned:
                    if p.event_type not in wanted or (p.receiver_id_type, p.receiver_id) == (id_type, receiver_id):
                        continue
                    if (id_type, receiver_id, p.event_type) in going:
                        continue
                    if await self._related(p.event_type, id_type, receiver_id, client_bsn, kind, data):
                        going.add((id_type, receiver_id, p.event_type))
                        extra.append(replace(p, receiver_id_type=id_type, receiver_id=receiver_id,
                                             subscription_id=subscription_id, receiver_did=did, receiver_url=endpoint))
            out.append(extra)
        return out

    async def _subscriptions(self, bsns: list[str]) -> list[Any]:
        """The organisations' subscriptions, and the clients' for these BSNs (the index says which)."""
        rows: list[Any] = []
        columns = ("subscription_id, subscriber_did, receiver_id_type, receiver_id, events, bsn, endpoint, subscriber_cert, "
                   "machtiging_cert, machtiging_until, subscriber_until")
        rows += await self.store.fetchall(f"SELECT {columns} FROM subscriptions WHERE bsn IS NULL")
        for start in range(0, len(bsns), 500):
            chunk = bsns[start:start + 500]
            rows += await self.store.fetchall(
                f"SELECT {columns} FROM subscriptions WHERE bsn IN ({', '.join('?' * len(chunk))})", tuple(chunk))
        return rows

    def _revoked(self, *certs: bytes | None) -> bool:
        """Whether a certificate a subscription rests on is revoked: the revocation ends it (``ended_by_revocation``),
        and until then, or after a restart with a list taken while the node was stopped, nothing is sent by it."""
        return any(cert is not None and self.is_revoked(bytes(cert)) for cert in certs)

    async def _related(self, event_type: str, id_type: str, receiver_id: str, client_bsn: str | None, kind: str,
                       data: dict[str, Any]) -> bool:
        role = "client" if id_type == "DID" else next((r for r, (t, _) in ID_TYPE_OF_ROLE.items() if t == id_type), None)
        relation = self.matrix["allowed"].get(event_type, {}).get(role or "")
        if relation is None:
            return False  # the matrix no longer allows it
        how, _, what = relation.partition(":")
        if how == "authority":
            return receiver_id in await self.parties(what, kind, data)
        if how == "record":
            return any(receiver_id == str(v) for path in what.split("|") for v in values_at(data, path))
        if how == "client":
            return client_bsn is not None and client_bsn == (RECORD_TYPES[kind].bsn(data) if kind in RECORD_TYPES else None)
        return False

    # Handlers ----------------------------------------------------------------------

    async def subscribe(self, incoming: Incoming, now: int) -> tuple[Ack, list[Statement]]:
        request = incoming.message
        assert isinstance(request, Subscribe)
        matrix = self.matrix
        member = incoming.sender
        refused = [e for e in request.events if member.role not in matrix["allowed"].get(e, {})]
        if refused or EVENT_RULES[request.events[0]].sender_role != self.role:
            raise RemoteProtocolError(ErrorCode.DENIED, f"a {member.role} may not subscribe to {', '.join(refused or request.events)} here",
                                      rule=matrix["rule"])
        machtiging: Signed | None = None
        if member.role == "client":
            if request.bsn is None or request.endpoint is None:
                raise self._only_own()
            if not self.is_client(member, request.bsn, request.bsn_key):
                machtiging = await self._machtiging(member, request.bsn, request.machtiging, now)
            id_type, receiver_id = "DID", member.did
        elif request.bsn is not None:
            raise RemoteProtocolError(ErrorCode.DENIED, "only a client names a BSN", rule=matrix["rule"])
        else:
            id_type, key = ID_TYPE_OF_ROLE[member.role]
            receiver_id = member.identifiers[key]
        under = _under(machtiging, request.machtiging)
        audited = {"actor": Actor.of(member), "rule": matrix["machtiging"] if machtiging else matrix["rule"],
                   "subject": request.bsn, "trace_id": incoming.envelope.trace_id, "request": incoming.data}
        until = member.expires if member.role == "client" else None
        held = await self.store.fetchall(
            "SELECT subscription_id, events, bsn, endpoint, machtiging, subscriber_cert, subscriber_until, created_at "
            "FROM subscriptions WHERE subscriber_did = ?", (member.did,))
        # Asked again (a restart, a retry whose answer was lost, a renewed certificate): the same subscription, not
        # one more. A person's records are followed here by one subscription of his node (or hers): asked with
        # other events (his node or this source upgraded since) it is that one with the events asked now.
        same = sorted((row for row in held if row[2] == request.bsn
                       and (request.bsn is not None or set(json.loads(row[1])) == set(request.events))),
                      key=lambda row: (row[7], row[0]))  # the first made is the one kept
        if same:
            return Ack(ref=same[0][0], status="accepted"), self._asked_again(member, request, same, until, under, audited, now)
        if len(held) >= MAX_PER_MEMBER:
            raise RemoteProtocolError(ErrorCode.CONFLICT, f"a member holds at most {MAX_PER_MEMBER} subscriptions here: "
                                      "unsubscribe one first")
        subscription_id = str(uuid.uuid4())
        return Ack(ref=subscription_id, status="accepted"), [
            ("INSERT INTO subscriptions (subscription_id, subscriber_did, subscriber_org, receiver_id_type, receiver_id, events, "
             "created_at, bsn, endpoint, subscriber_cert, subscriber_until, machtiging, machtiging_id, machtiging_signer, "
             "machtiging_cert, machtiging_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
             (subscription_id, member.did, member.organisation, id_type, receiver_id, json.dumps(list(request.events)),
              now, request.bsn, request.endpoint, member.cert_id, until, *under), False),
            self.audit.entry(now=now, event="subscription.create", action="C", result="accepted", **audited),
        ]

    def _asked_again(self, member: Member, request: Subscribe, same: list[Any], until: int | None,
                     under: tuple[Any, ...], audited: dict[str, Any], now: int) -> list[Statement]:
        """The subscription asked for again: where a client's node that moved (another port after a restart) is
        now, the certificate and the events it asks with now, the machtiging a gemachtigde presented last. More
        than one of a person's (made before they were one) become the first."""
        (subscription_id, events, _, endpoint, was, cert, kept_until, _), extra = same[0], same[1:]
        moved = (endpoint != request.endpoint or was != under[0] or cert != member.cert_id or kept_until != until
                 or set(json.loads(events)) != set(request.events))
        out: list[Statement] = []
        if moved:
            out.append(("UPDATE subscriptions SET endpoint = ?, subscriber_cert = ?, subscriber_until = ?, events = ?, "
                        "machtiging = ?, machtiging_id = ?, machtiging_signer = ?, machtiging_cert = ?, machtiging_until = ? "
                        "WHERE subscription_id = ?", (request.endpoint, member.cert_id, until, json.dumps(list(request.events)),
                                                       *under, subscription_id), False))
        out.append(self.audit.entry(now=now, event="subscription.create", action="U" if moved else "R",
                                    result="moved" if moved else "exists", **audited))
        for row in extra:
            out += [("DELETE FROM subscriptions WHERE subscription_id = ?", (row[0],), False),
                    self.audit.entry(now=now, event="subscription.delete", action="D", result="merged", **audited)]
        return out

    def _only_own(self, why: str = "") -> RemoteProtocolError:
        return RemoteProtocolError(ErrorCode.DENIED, "a client subscribes to his own records only, with his BSN and the "
                                   "endpoint of his node, or to those of a client who gave him a machtiging, presenting "
                                   f"it{why}", rule=self.matrix["rule"])

    async def _machtiging(self, member: Member, bsn: str, presented: bytes | None, now: int) -> Signed:
        """The machtiging of the client with ``bsn`` that lets ``member`` follow his records."""
        if presented is None:
            raise self._only_own()
        held = await self.machtiging_for(member, bsn, FOLLOWS_BY, presented, now)
        if isinstance(held, str):
            raise self._only_own(f"; no machtiging of this client to follow his records: {held}")
        return held

    async def unsubscribe(self, incoming: Incoming, now: int) -> tuple[Ack, list[Statement]]:
        request = incoming.message
        assert isinstance(request, Unsubscribe)
        row = await self.store.fetchone("SELECT subscriber_did FROM subscriptions WHERE subscription_id = ?",
                                        (request.subscription_id,))
        if row is None or row[0] != incoming.sender.did:
            raise RemoteProtocolError(ErrorCode.NOT_FOUND, "no such subscription of yours")
        return Ack(ref=request.subscription_id, status="accepted"), [
            ("DELETE FROM subscriptions WHERE subscription_id = ?", (request.subscription_id,), False),
            self.audit.entry(now=now, event="subscription.delete", action="D", result="ok",
                             actor=Actor.of(incoming.sender), trace_id=incoming.envelope.trace_id),
        ]

    async def ask_after_machtigingen(self, now: int) -> int:
        """Ask his node after each machtiging gemachtigden follow his records by here (a housekeeping job): one he
        withdrew (or gave again: his node answers for its current version only) ends what she follows by it. A
        source his withdrawal did not reach (one his records no longer lead his node to) learns it so; his node not
        answering ends nothing. One whose geldigTot has passed ends unasked (nothing was sent by it since). Returns
        how many ended."""
        today = day_of(now)
        rows = await self.store.fetchall(
            "SELECT DISTINCT machtiging_id, machtiging_signer, machtiging, machtiging_until FROM subscriptions "
            "WHERE machtiging_id IS NOT NULL")
        ended = [(str(i), str(signer)) for i, signer, _, until in rows if until < today]
        asked = [row for row in rows if row[3] >= today]
        for start in range(0, len(asked), ASKED_AT_ONCE):
            chunk = asked[start:start + ASKED_AT_ONCE]
            answers = await asyncio.gather(*(self.stands(bytes(signed), now) for _, _, signed, _ in chunk))
            ended += [(str(i), str(signer)) for (i, signer, _, _), stands in zip(chunk, answers) if stands is False]
        if ended:
            await self.store.write([self.end_under(ended)])
        return len(ended)

    async def ended_with_certificates(self, now: int) -> list[tuple[str, str]]:
        """The clients' subscriptions (id, subscriber's did) whose certificate has ended: nothing was sent by them
        since. An organisation's rests on its place in the peer table, which ends with its certificate and comes
        back renewed."""
        rows = await self.store.fetchall("SELECT subscription_id, subscriber_did FROM subscriptions "
                                         "WHERE subscriber_until IS NOT NULL AND subscriber_until < ?", (now,))
        return [(str(i), str(did)) for i, did in rows]

    async def ended_by_revocation(self) -> list[tuple[str, str]]:
        """The subscriptions (id, subscriber's did) that end with certificates revoked now: their subscriber's (a
        client's node is in no peer table, so nothing else ends his), or the one the machtiging they follow by was
        signed under."""
        rows = await self.store.fetchall(
            "SELECT subscription_id, subscriber_did, subscriber_cert, machtiging_cert FROM subscriptions")
        return [(str(i), str(did)) for i, did, *certs in rows if self._revoked(*certs)]

    @staticmethod
    def forget(subscription_ids: list[str]) -> Statement:
        return ("DELETE FROM subscriptions WHERE subscription_id = ?", [(i,) for i in subscription_ids], True)

    @staticmethod
    def end_under(machtigingen: list[tuple[str, str]]) -> Statement:
        """What gemachtigden follow by these machtigingen (id, the did of the client who signed it) ends: he withdrew
        them."""
        return ("DELETE FROM subscriptions WHERE machtiging_id = ? AND machtiging_signer = ?", machtigingen, True)

    @staticmethod
    def move_to(pairs: list[tuple[str, str]]) -> list[Statement]:
        """Members that moved to a new key keep their subscriptions."""
        return [("UPDATE subscriptions SET subscriber_did = ? WHERE subscriber_did = ?", (new, old), False) for old, new in pairs]

    @staticmethod
    def forget_members(dids: list[str]) -> Statement:
        """Revoked members' subscriptions end."""
        return (f"DELETE FROM subscriptions WHERE subscriber_did IN ({', '.join('?' * len(dids))})", tuple(dids), False)


def _under(machtiging: Signed | None, presented: bytes | None
           ) -> tuple[bytes | None, str | None, str | None, bytes | None, str | None]:
    """The machtiging columns of a subscription: as presented (signed), its id, its signer's did and certificate, its
    geldigTot."""
    if machtiging is None:
        return None, None, None, None, None
    return (presented, machtiging.record.record_id, machtiging.signer.did, machtiging.signer.cert_id,
            str((machtiging.record.data or {})["geldigTot"]))


__all__ = ["Subscriptions", "FOLLOWS_BY"]
