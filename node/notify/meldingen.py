"""Meldingen this node reports (eventType IWLZFOUTMELDING), followed until the source answers.

A melding is written to the outbox in one transaction with its row here, so
it is sent, and sent again while the source is away, until the source
acknowledges it; a source that refuses it (no such record, no relation to it)
ends it as ``refused``. The source's answer comes as a notification
(GEWIJZIGDE_MELDING_MELDER); the inbox fetches it with MELDING-STATUS and
hands it here, where it counts only when signed by the party it was sent to.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from keys import Member
from node.discovery import PeerTable
from node.errors import ValidationError
from node.notify.outbox import Outbox
from node.store import Actor, AuditLog, Statement, Store
from node.store.records import checked_fields
from protocol import ID_TYPE_OF_ROLE, MELDING_EVENT, LocalProtocolError, Melding
from protocol.records import RecordVersion

PeerFor = Callable[[str], Awaitable[tuple[str, str]]]
_COLUMNS = ("melding_id", "receiver_did", "receiver_org", "record", "rule", "description", "sent_at", "status", "reden",
            "termijn", "updated_at")


def organisation_id(role: str, identifiers: dict[str, str], did: str) -> str:
    """How an organisation is named across key changes: the identifier of its role (``uzovi:5151``)."""
    _, key = ID_TYPE_OF_ROLE.get(role, ("", ""))
    return f"{key}:{identifiers[key]}" if key in identifiers else did


class MeldingenSent:
    def __init__(self, *, store: Store, audit: AuditLog, outbox: Outbox, peers: PeerTable, peer_for: PeerFor,
                 me: Callable[[], Member], own_url: Callable[[], str]) -> None:
        self.store = store
        self.audit = audit
        self.outbox = outbox
        self.peers = peers
        self.peer_for = peer_for
        self.me = me
        self.own_url = own_url

    async def send(self, peer: str, *, record: str, rule: str, description: str, now: int) -> str:
        """Queue a melding to the source ``peer`` (did, URL or identifier); returns its id."""
        if len(description) > 4096:
            raise ValidationError("the description is longer than 4096 characters")
        url, did = await self.peer_for(peer)
        member = self.me()
        endpoint = self.own_url() if member.role == "client" else None  # no peer table holds a client's node
        try:
            melding = Melding(melding_id=str(uuid.uuid4()), event_type=MELDING_EVENT, rule=rule, record=record,
                              description=description, endpoint=endpoint)
        except LocalProtocolError as exc:
            raise ValidationError(f"not a valid melding: {exc}") from exc
        known = self.peers.get(did)
        receiver_org = organisation_id(known.role, known.identifiers, did) if known is not None else did
        payload = {"rule": rule, "record": record, "description": description, "endpoint": endpoint}
        await self.store.write([
            self.outbox.melding_row(melding.melding_id, did, url, record, payload, now),
            (f"INSERT INTO meldingen_sent ({', '.join(_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, 'verzonden', NULL, NULL, ?)",
             (melding.melding_id, did, receiver_org, record, rule, description, now, now), False),
            self.audit.entry(now=now, event="melding.queued", action="C", result="queued", actor=Actor.of(member),
                             record=record, rule=rule),
        ])
        self.outbox.wake()
        return melding.melding_id

    async def answer_fetched(self, records: list[tuple[RecordVersion, Member, bytes]]) -> None:
        """Keep the status and reason of an answered melding, when the party it was sent to signed it. The source
        signs what it likes: what the reporter reads of an answer must be as the Melding schema has it (else
        ValidationError)."""
        statements: list[Statement] = []
        for record, signer, _ in records:
            if record.kind != "Melding" or record.data is None:
                continue
            data = checked_fields("Melding", record.data, ("status",))
            statements.append((
                "UPDATE meldingen_sent SET status = ?, reden = ?, termijn = ?, updated_at = ? "
                "WHERE melding_id = ? AND (receiver_did = ? OR receiver_org = ?)",
                (data["status"], data.get("reden"), data.get("termijn"), record.signed_at, record.record_id, signer.did,
                 organisation_id(signer.role, dict(signer.identifiers), signer.did)), False))
        if statements:
            await self.store.write(statements)

    async def list(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The meldingen sent, newest first, with how far delivery got and the source's answer."""
        rows = await self.store.fetchall(
            f"SELECT {', '.join('m.' + c for c in _COLUMNS)}, o.status, o.attempts, o.last_error FROM meldingen_sent m "
            "LEFT JOIN outbox o ON o.notification_id = m.melding_id ORDER BY m.sent_at DESC LIMIT ?", (limit,))
        out = []
        for row in rows:
            item = dict(zip(_COLUMNS, row[:len(_COLUMNS)]))
            delivery, attempts, last_error = row[len(_COLUMNS):]
            if item["status"] == "verzonden" and delivery == "delivered":
                item["status"] = "ontvangen"  # acknowledged, not yet answered
            elif item["status"] == "verzonden" and delivery == "refused":
                item["status"] = "geweigerd"
            out.append(item | {"delivery": delivery, "attempts": attempts, "last_error": last_error})
        return out


__all__ = ["MeldingenSent", "organisation_id"]
