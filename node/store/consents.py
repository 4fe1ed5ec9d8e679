"""Consents a client withdrew, as a source heard of them (VERWIJDERDE_TOESTEMMING_BRON): from then on it refuses them."""

from __future__ import annotations

from node.store.database import Statement, Store


class RevokedConsents:
    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def revoke(consent_id: str, client_did: str, now: int) -> Statement:
        return ("INSERT OR IGNORE INTO revoked_consents (consent_id, client_did, revoked_at) VALUES (?, ?, ?)",
                (consent_id, client_did, now), False)

    async def revoked(self, consent_id: str, client_did: str) -> bool:
        """Withdrawn by the client who signed it (a revocation from anyone else counts for nothing)."""
        rows = await self.store.lookup("SELECT 1 FROM revoked_consents WHERE consent_id = ? AND client_did = ?",
                                       (consent_id, client_did))
        return bool(rows)


__all__ = ["RevokedConsents"]
