"""Evidence this node holds: signed records from other sources that name it, to present when it asks a source.

A provider keeps the Bemiddelingspecificatie that assigns it, a zorgkantoor
the Bemiddelingen whose Overdracht made it responsible (and the earlier
steps of that chain it was handed). A newer version of a record replaces an
older one, never the other way round, and only one from the same signer: a
record about the same indicatie or client from the same source organisation
(its key may have changed), or a consent about the same client (only he signs
those: checked on arrival). Record ids are the signer's to choose, so another
member could otherwise put his own record, under the id of one held, in its
place.
"""

from __future__ import annotations

from keys import Member
from node.store.database import Statement, Store
from protocol.records import RecordVersion

_UPSERT = ("INSERT INTO evidence (kind, record_id, wlzIndicatieID, signed, version, source, source_org) "
           "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, record_id) DO UPDATE SET wlzIndicatieID = excluded.wlzIndicatieID, "
           "signed = excluded.signed, version = excluded.version, source = excluded.source, source_org = excluded.source_org "
           "WHERE excluded.version >= evidence.version AND excluded.wlzIndicatieID = evidence.wlzIndicatieID "
           # (rows kept before schema 4 name no source organisation)
           "AND (excluded.kind = 'Toestemming' OR evidence.source_org IS NULL OR excluded.source_org = evidence.source_org)")


class HeldEvidence:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def about(self, indicatie_id: str, kinds: tuple[str, ...] | None = None) -> list[bytes]:
        return (await self.about_many([indicatie_id], kinds))[indicatie_id]

    async def about_many(self, indicatie_ids: list[str], kinds: tuple[str, ...] | None = None) -> dict[str, list[bytes]]:
        """What is held about each indicatie (of ``kinds``, or all), by kind and record id, in a few reads: a batch
        of notifications asks for up to 64, and each read is a hop to the database's thread, which costs more than
        the lookup."""
        held: dict[str, list[bytes]] = {indicatie: [] for indicatie in indicatie_ids}
        wanted = sorted(held)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            rows = await self.store.fetchall(
                f"SELECT wlzIndicatieID, kind, signed FROM evidence WHERE wlzIndicatieID IN ({', '.join('?' * len(chunk))}) "
                "ORDER BY kind, record_id", chunk)
            for indicatie, kind, signed in rows:
                if kinds is None or kind in kinds:
                    held[indicatie].append(bytes(signed))
        return held

    @staticmethod
    def forget_consents(withdrawn: list[tuple[str, str]]) -> Statement:
        """Let go of consents (record id, the did of the client who signed them) he withdrew: they name his BSN."""
        return ("DELETE FROM evidence WHERE kind = 'Toestemming' AND record_id = ? AND source = ?", withdrawn, True)

    @staticmethod
    def forget_ended_consents(consent_ids: list[str]) -> Statement:
        """Let go of consents that ended: they name his BSN and open nothing."""
        return ("DELETE FROM evidence WHERE kind = 'Toestemming' AND record_id = ?", [(i,) for i in consent_ids], True)

    @staticmethod
    def keep(items: list[tuple[RecordVersion, Member, bytes]]) -> list[Statement]:
        """Statements that keep the items about an indicatie (Bemiddelingen and specificaties), and consents
        (kept by the client's BSN: ``about("bsn:…")``)."""
        rows = [(record.kind, record.record_id, _about(record), raw, record.version, source.did, _organisation_id(source))
                for record, source, raw in items if _about(record) is not None]
        return [(_UPSERT, rows, True)] if rows else []


def _about(record: RecordVersion) -> str | None:
    data = record.data or {}
    if record.kind in ("Bemiddeling", "Bemiddelingspecificatie") and "wlzIndicatieID" in data:
        return str(data["wlzIndicatieID"])
    if record.kind == "Toestemming" and "bsn" in data:
        return f"bsn:{data['bsn']}"
    return None


def _organisation_id(member: Member) -> str:
    """How to reach the source again when its key changes: by its identifier, e.g. ``uzovi:5151``."""
    for name in ("uzovi", "agb", "kvk"):
        if name in member.identifiers:
            return f"{name}:{member.identifiers[name]}"
    return member.did


__all__ = ["HeldEvidence"]
