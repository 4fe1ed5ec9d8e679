"""Voluntary subscriptions at a source (never built in the real network), checked against the matrix."""

from __future__ import annotations

import json
import uuid
from typing import Any

from node.interfaces import Handlers
from node.notify.events import ID_TYPE_OF_ROLE
from node.store import Actor, AuditLog, Statement, Store
from protocol import Ack, ErrorCode, Incoming, RemoteProtocolError, Subscribe, Unsubscribe
from protocol.events import EVENT_RULES

_COLUMNS = ("subscription_id", "subscriber_did", "subscriber_org", "receiver_id_type", "receiver_id", "events", "created_at")


class Subscriptions:
    """Voluntary subscriptions at a source, checked against the matrix (policy.json "subscriptions")."""

    def __init__(self, *, store: Store, audit: AuditLog, role: str, matrix: dict[str, Any]) -> None:
        self.store = store
        self.audit = audit
        self.role = role
        self.matrix = matrix  # policy.json "subscriptions"

    def handlers(self) -> Handlers:
        return {Subscribe: self.subscribe, Unsubscribe: self.unsubscribe}

    async def all(self) -> list[dict[str, Any]]:
        rows = await self.store.fetchall(f"SELECT {', '.join(_COLUMNS)} FROM subscriptions ORDER BY created_at")
        return [dict(zip(_COLUMNS, r)) | {"events": json.loads(r[5])} for r in rows]

    async def subscribe(self, incoming: Incoming, now: int) -> tuple[Ack, list[Statement]]:
        request = incoming.message
        assert isinstance(request, Subscribe)
        matrix = self.matrix
        member = incoming.sender
        refused = [e for e in request.events if member.role not in matrix["allowed"].get(e, [])]
        if refused or EVENT_RULES[request.events[0]].sender_role != self.role:
            raise RemoteProtocolError(ErrorCode.DENIED, f"a {member.role} may not subscribe to {', '.join(refused or request.events)} here",
                                      rule=matrix["rule"])
        id_type, key = ID_TYPE_OF_ROLE[member.role]
        subscription_id = str(uuid.uuid4())
        return Ack(ref=subscription_id, status="accepted"), [
            ("INSERT INTO subscriptions (subscription_id, subscriber_did, subscriber_org, receiver_id_type, receiver_id, events, "
             "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
             (subscription_id, member.did, member.organisation, id_type, member.identifiers[key], json.dumps(list(request.events)),
              now), False),
            self.audit.entry(now=now, event="subscription.create", action="C", result="accepted", actor=Actor.of(member),
                                  rule=matrix["rule"], trace_id=incoming.envelope.trace_id, request=incoming.data),
        ]

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


__all__ = ["Subscriptions"]
