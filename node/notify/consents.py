"""Consents arriving: a party keeps the consents a client hands it, a source takes note when one is withdrawn."""

from __future__ import annotations

import logging
from collections.abc import Callable

from keys import Member, TrustStore
from node.interfaces import Handlers
from node.notify.subscriptions import Subscriptions
from node.store import HeldEvidence, RevokedConsents, Statement, Store
from node.store.records import bsn_key_of, day_of, fits
from protocol import Ack, Consent, ErrorCode, Incoming, Message, Notification, RemoteProtocolError
from protocol.records import RecordVersion, verify_record

log = logging.getLogger(__name__)
# Consents of one client a party holds at most. Each names a party, sources, templates and a purpose: a client
# has a few for a party; the bound keeps one who signs new ones at will from filling the party's store (and
# the evidence it checks again at every refresh). Ended ones make room.
CONSENTS_PER_CLIENT = 100


Kept = tuple[RecordVersion, Member, bytes]


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
        kept: list[Kept] = []
        for data in message.consents:
            try:
                record, signer = verify_record(data, self.trust, now)
            except RemoteProtocolError:
                continue
            if record.kind == "Toestemming" and signer.did == incoming.sender.did and record.data \
                    and fits(record.kind, record.data) and signer.role == "client" \
                    and signer.matches_bsn(str(record.data.get("bsn", "")), bsn_key_of(record.data)) \
                    and self._names_me(record.data.get("ontvanger", {})):
                kept.append((record, signer, data))
        if not kept:
            raise RemoteProtocolError(ErrorCode.MALFORMED, "no consent in this message is signed by its sender, the "
                                      "client it is about, and names us")
        about = f"bsn:{(kept[0][0].data or {})['bsn']}"  # all are about the sender: his certificate commits to one BSN
        kept = await self._not_anothers(kept, about)
        room = await self._room(about, {record.record_id for record, _, _ in kept}, now)
        return Ack(ref=f"{len(kept)} kept", status="accepted"), room + self.held.keep(kept)

    async def _not_anothers(self, kept: list[Kept], about: str) -> list[Kept]:
        """Those whose id no consent of another client held here has (it would not take that one's place, and
        the sender should not be told it was kept)."""
        ids = [record.record_id for record, _, _ in kept]
        taken = {row[0] for row in await self.store.fetchall(
            f"SELECT record_id FROM evidence WHERE kind = 'Toestemming' AND record_id IN ({', '.join('?' * len(ids))}) "
            "AND wlzIndicatieID != ?", (*ids, about))}
        if taken and len(taken) == len(set(ids)):
            raise RemoteProtocolError(ErrorCode.CONFLICT, "a consent of another client with this id is held here",
                                      rule="TOESTEMMING-HELD")
        return [item for item in kept if item[0].record_id not in taken]

    async def _room(self, about: str, new: set[str], now: int) -> list[Statement]:
        """Room for these consents of one client: what makes it (the ended ones held go), or refused."""
        rows = await self.store.fetchall(
            "SELECT record_id, signed FROM evidence WHERE wlzIndicatieID = ? AND kind = 'Toestemming'", (about,))
        held = {record_id for record_id, _ in rows}
        if len(held | new) <= CONSENTS_PER_CLIENT:
            return []
        ended = {record_id for record_id, signed in rows if consent_ended(bytes(signed), self.trust, now)}
        if len((held - ended) | new) > CONSENTS_PER_CLIENT:
            raise RemoteProtocolError(ErrorCode.CONFLICT, f"this party holds at most {CONSENTS_PER_CLIENT} consents of "
                                      "one client that have not ended", rule="TOESTEMMING-HELD")
        return [HeldEvidence.forget_ended_consents(sorted(ended))]

    @staticmethod
    def withdrawn(note: Notification, sender: Member, now: int) -> list[Statement]:
        """VERWIJDERDE_TOESTEMMING_BRON and _ONTVANGER: the consents named are withdrawn by the client who sent it
        (and signed them): a source refuses them from now on, and the party they were given to lets go of them,
        for they name his BSN."""
        ids = [s.record_id.partition("/")[2] for s in note.subjects]
        return [*(RevokedConsents.revoke(i, sender, now) for i in ids),
                HeldEvidence.forget_consents([(i, sender.did) for i in ids]),
                Subscriptions.end_under([(i, sender.did) for i in ids])]


def consent_ended(signed: bytes, trust: TrustStore, now: int) -> bool:
    """Whether a consent held here opens nothing any more: its geldigTot has passed, or it no longer verifies."""
    try:
        record, _ = verify_record(signed, trust, now)
    except RemoteProtocolError:
        return True
    return record.deleted or str((record.data or {}).get("geldigTot", "")) < day_of(now)


__all__ = ["ConsentsReceived", "consent_ended"]
