"""Consents arriving: a party keeps the consents a client hands it, a source takes note when one is withdrawn."""

from __future__ import annotations

import logging
from collections.abc import Callable

from keys import Member, TrustStore
from node.interfaces import Handlers
from node.store import HeldEvidence, RevokedConsents, Statement, Store
from protocol import Ack, Consent, ErrorCode, Incoming, Message, Notification, RemoteProtocolError
from protocol.records import verify_record

log = logging.getLogger(__name__)


class ConsentsReceived:
    def __init__(self, *, store: Store, trust: TrustStore, me: Callable[[], Member]) -> None:
        self.store = store
        self.trust = trust
        self.me = me
        self.held = HeldEvidence(store)

    def handlers(self) -> Handlers:
        return {Consent: self._on_consent}

    def _names_me(self, grantee: dict[str, str]) -> bool:
        me = self.me()
        return grantee.get("did") == me.did or any(v in me.identifier_values(k) for k, v in grantee.items() if k != "did")

    async def _on_consent(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        message = incoming.message
        assert isinstance(message, Consent)
        kept = []
        for data in message.consents:
            try:
                record, signer = verify_record(data, self.trust, now)
            except RemoteProtocolError:
                continue
            if record.kind == "Toestemming" and signer.did == incoming.sender.did and record.data \
                    and self._names_me(record.data.get("ontvanger", {})):
                kept.append((record, signer, data))
        if not kept:
            raise RemoteProtocolError(ErrorCode.MALFORMED, "no consent in this message is signed by its sender and names us")
        return Ack(ref=f"{len(kept)} kept", status="accepted"), self.held.keep(kept)

    @staticmethod
    def withdrawn(note: Notification, sender: Member, now: int) -> list[Statement]:
        """VERWIJDERDE_TOESTEMMING_BRON: the consents named are withdrawn by the client who sent it."""
        return [RevokedConsents.revoke(s.record_id.partition("/")[2], sender.did, now) for s in note.subjects]


__all__ = ["ConsentsReceived"]
