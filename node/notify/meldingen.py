"""Meldingen: a participant reports an error in a record to its source (eventType IWLZFOUTMELDING)."""

from __future__ import annotations

from typing import Any

from node.interfaces import Handlers
from node.store import RECORD_TYPES, Actor, AuditLog, Statement, Store
from protocol import Ack, ErrorCode, Incoming, Melding, Message, RemoteProtocolError

_COLUMNS = ("melding_id", "received_at", "sender_did", "sender_org", "rule", "record", "description", "status")


class Meldingen:
    def __init__(self, *, store: Store, audit: AuditLog) -> None:
        self.store = store
        self.audit = audit

    def handlers(self) -> Handlers:
        return {Melding: self._on_melding}

    async def all(self) -> list[dict[str, Any]]:
        rows = await self.store.fetchall(f"SELECT {', '.join(_COLUMNS)} FROM meldingen ORDER BY received_at")
        return [dict(zip(_COLUMNS, row)) for row in rows]

    async def _on_melding(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        melding = incoming.message
        assert isinstance(melding, Melding)
        kind, _, record_id = melding.record.partition("/")
        if kind not in RECORD_TYPES and kind != "Bemiddelingspecificatie":
            raise RemoteProtocolError(ErrorCode.NOT_FOUND, "no such record type here")
        existing = await self.store.fetchone("SELECT 1 FROM meldingen WHERE melding_id = ?", (melding.melding_id,))
        if existing:
            return Ack(ref=melding.melding_id, status="duplicate"), []
        statements: list[Statement] = [
            (f"INSERT OR IGNORE INTO meldingen ({', '.join(_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, 'open')",
             (melding.melding_id, now, incoming.sender.did, incoming.sender.organisation, melding.rule, melding.record,
              melding.description), False),
            self.audit.entry(now=now, event="melding", action="C", result="received", actor=Actor.of(incoming.sender),
                             record=melding.record, trace_id=incoming.envelope.trace_id, rule=melding.rule,
                             request=incoming.data),
        ]
        return Ack(ref=melding.melding_id, status="accepted"), statements


__all__ = ["Meldingen"]
