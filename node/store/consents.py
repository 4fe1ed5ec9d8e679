"""Consents a client withdrew, as a source heard of them (VERWIJDERDE_TOESTEMMING_BRON): from then on it refuses them."""

from __future__ import annotations

from keys import Member, cbor
from keys.certificate import KEYED, BsnCommitment
from keys.errors import KeysError
from node.store.database import Statement, Store
from node.store.records import bsn_key_of
from protocol.records import RecordVersion


class RevokedConsents:
    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def revoke(consent_id: str, client: Member, now: int) -> Statement:
        """``client``: who withdrew it; what his certificate commits to (his BSN) is kept with it, when it is keyed (an
        argon2id one costs a tenth of a second to test, at each use of the consent: anyone may send a withdrawal)."""
        committed = client.bsn_commitment
        commitment = cbor.encode(committed.to_cbor()) if committed is not None and committed.alg == KEYED else None
        return ("INSERT OR IGNORE INTO revoked_consents (consent_id, client_did, revoked_at, client_commitment) "
                "VALUES (?, ?, ?, ?)", (consent_id, client.did, now, commitment), False)

    async def revoked(self, consent: RecordVersion, signer: Member) -> bool:
        """Withdrawn by the client who signed it (a revocation from anyone else counts for nothing): by the key that
        signed it, or by another of his, whose certificate commits to the consent's BSN (he moved to a new key: the
        copy signed under the old one holds until its certificate ends)."""
        rows = await self.store.lookup("SELECT client_did, client_commitment FROM revoked_consents WHERE consent_id = ?",
                                       (consent.record_id,))
        data = consent.data or {}
        bsn, key = str(data.get("bsn", "")), bsn_key_of(data)
        return any(did == signer.did or (commitment is not None and _commits_to(bytes(commitment), bsn, key))
                   for did, commitment in rows)


def _commits_to(commitment: bytes, bsn: str, key: bytes | None) -> bool:
    try:
        return BsnCommitment.from_cbor(cbor.decode(commitment)).matches(bsn, key)
    except KeysError:
        return False


__all__ = ["RevokedConsents"]
