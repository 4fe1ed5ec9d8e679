"""Evidence a requester presents: signed records from other sources, verified offline.

Evidence that does not verify, is a tombstone, or is older than the freshness
bound and cannot be confirmed with its source counts as absent: a rule that
needs it then denies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from keys import Member, TrustStore
from protocol import RemoteProtocolError
from protocol.records import RecordVersion, verify_record

Confirm = Callable[[RecordVersion, Member], Awaitable[bool]]
MAX_EVIDENCE = 16


@dataclass(frozen=True, slots=True)
class Evidence:
    record: RecordVersion
    signer: Member


async def verified_evidence(presented: tuple[bytes, ...], trust: TrustStore, now: int, *, freshness: int,
                            confirm: Confirm | None) -> list[Evidence]:
    valid = []
    for data in presented[:MAX_EVIDENCE]:
        try:
            record, signer = verify_record(data, trust, now)
        except RemoteProtocolError:
            continue
        if record.deleted:
            continue
        if now - record.signed_at > freshness:
            if confirm is None or not await confirm(record, signer):
                continue
        valid.append(Evidence(record, signer))
    return valid


__all__ = ["Evidence", "Confirm", "verified_evidence", "MAX_EVIDENCE"]
