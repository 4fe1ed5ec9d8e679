"""From verified message to signed reply: the handler registered for the message type, the writes it
causes (and the replay ids) in the group commit of this loop turn, then the reply.

A handler raises RemoteProtocolError (or Denied) for a signed error with a
stable code; a NodeError becomes ``unavailable``; a denial is audited with
the rule that decided it.
"""

from __future__ import annotations

import logging

from node.errors import NodeError, ReplayedElsewhere
from node.interfaces import Handler, Handlers
from node.metrics import Metrics
from node.policy import Denied
from node.store import Actor, AuditLog, Statement, Store
from protocol import Endpoint, Error, ErrorCode, Incoming, Message, Query, RemoteProtocolError, ReplayGuard

log = logging.getLogger(__name__)

REMEMBER_ID = "INSERT INTO replay (sender, message_id, forget_after) VALUES (?, ?, ?)"
# The ids kept in the order they came (schema 15), forgotten from the front: up to the first one still inside its
# window, which is where the ones that have passed end, give or take the clock skew a message may have; one that is
# still inside its window there is kept and goes with a later pass.
_FORGET_IDS = ("DELETE FROM replay WHERE forget_after < ? AND rowid < coalesce("
               "(SELECT rowid FROM replay WHERE forget_after >= ? ORDER BY rowid LIMIT 1), "
               "(SELECT max(rowid) FROM replay) + 1)")


async def load_replay_guard(store: Store, now: int) -> ReplayGuard:
    """The replay guard with the ids still inside their time window, as the store kept them."""
    guard = ReplayGuard()
    rows = await store.fetchall("SELECT sender, message_id, forget_after FROM replay WHERE forget_after >= ?", (now,))
    guard.load((s, bytes(m), int(f)) for s, m, f in rows)
    return guard


def denied_entries(audit: AuditLog, metrics: Metrics, incoming: Incoming, message: Message, exc: Denied,
                   now: int) -> list[Statement]:
    """A refused request (or one query of a batch, ``message``), audited: one entry per client it was about (one
    without a subject when none is known)."""
    subjects: list[str | None] = [*sorted(exc.subjects)] or [message.params.get("bsn") if isinstance(message, Query) else None]
    metrics.count_decision(exc.rule or "", "denied")
    event = f"query {message.template}" if isinstance(message, Query) else incoming.envelope.type
    return [audit.entry(now=now, event=event, action="R", result="denied", actor=Actor.of(incoming.sender),
                        subject=subject, trace_id=incoming.envelope.trace_id, rule=exc.rule, request=incoming.data)
            for subject in subjects]


class Dispatcher:
    def __init__(self, *, endpoint: Endpoint, store: Store, audit: AuditLog, metrics: Metrics) -> None:
        self.endpoint = endpoint
        self.store = store
        self.audit = audit
        self.metrics = metrics
        self._handlers: dict[type[Message], Handler] = {}

    def register(self, handlers: Handlers) -> None:
        """Each part registers the handlers of the message types it owns; a type has one owner."""
        for kind, handler in handlers.items():
            if kind in self._handlers:
                raise ValueError(f"{kind.TYPE} messages already have a handler")
            self._handlers[kind] = handler

    def own_id(self, incoming: Incoming) -> list[tuple[str, bytes, int]]:
        """This message's replay id, to persist with its own writes (never another request's)."""
        return self.endpoint.replay.take(incoming.sender.did, incoming.envelope.message_id)

    def handles(self, message: Message) -> bool:
        return type(message) in self._handlers

    async def dispatch(self, incoming: Incoming, now: int) -> tuple[int, bytes]:
        kind = incoming.envelope.type
        handler = self._handlers.get(type(incoming.message))
        statements: list[Statement] = []
        try:
            if handler is None:
                raise RemoteProtocolError(ErrorCode.UNSUPPORTED, f"this node does not handle {kind} messages")
            reply, statements = await handler(incoming, now)
            status, outcome = 200, "ok"
        except RemoteProtocolError as exc:
            reply, status, outcome = Error(code=exc.code.value, reason=exc.reason, rule=exc.rule), exc.status_hint, exc.code.value
            if isinstance(exc, Denied):
                statements = denied_entries(self.audit, self.metrics, incoming, incoming.message, exc, now)
        except NodeError as exc:
            log.error("handling %s failed: %s", kind, exc.__class__.__name__)
            reply, status, outcome = Error(code="unavailable", reason="the node could not handle this now", rule=None), 503, "unavailable"
        statements.extend((REMEMBER_ID, entry, False) for entry in self.own_id(incoming))
        try:
            if statements:
                await self.store.write(statements)
        except ReplayedElsewhere:
            replayed = RemoteProtocolError(ErrorCode.REPLAY, "message id was already received")
            reply, status, outcome = Error(code=replayed.code.value, reason=replayed.reason, rule=None), replayed.status_hint, "replay"
        except NodeError:
            reply, status, outcome = Error(code="unavailable", reason="the store could not commit", rule=None), 503, "unavailable"
        self.metrics.count_request(kind, outcome)
        return status, self.endpoint.reply(incoming, reply, now=now).data

    async def forget_old_ids(self, now: int) -> None:
        """Replay ids whose time window has passed are refused anyway: drop them, in memory and in the store."""
        self.endpoint.replay.prune(now)
        await self.store.write([(_FORGET_IDS, (now, now), False)])


__all__ = ["Dispatcher", "load_replay_guard", "denied_entries", "REMEMBER_ID"]
