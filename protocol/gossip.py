"""Anti-entropy for signed announcements, sans-IO: what a node knows, and how two nodes find what differs.

Strategy: the table is split into 64 buckets by a hash of the did. Each
bucket has a fingerprint, the XOR of the 8-byte hashes of its (did, seq)
entries, so it is updated in O(1) when an entry changes. Two nodes compare
the 64 fingerprints (512 bytes) first, then exchange (did, seq) digests of
the buckets that differ only, and finally only the announcements one side
lacks or holds in an older version. When nothing differs an exchange costs
one summary each way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

BUCKETS: Final = 64
FINGERPRINT_SIZE: Final = 8
SUMMARY_SIZE: Final = BUCKETS * FINGERPRINT_SIZE


def _h(did: str, seq: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{did}\x00{seq}".encode()).digest()[:FINGERPRINT_SIZE], "big")


def bucket_of(did: str) -> int:
    return hashlib.sha256(did.encode()).digest()[0] % BUCKETS


@dataclass(frozen=True, slots=True)
class Known:
    did: str
    seq: int
    expires: int
    data: bytes


class GossipTable:
    """Signed announcements by did, newest sequence number wins; a pure object."""

    def __init__(self) -> None:
        self.entries: dict[str, Known] = {}
        self._fingerprints = [0] * BUCKETS

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, did: str) -> bool:
        return did in self.entries

    def get(self, did: str) -> Known | None:
        return self.entries.get(did)

    def is_news(self, did: str, seq: int) -> bool:
        known = self.entries.get(did)
        return known is None or seq > known.seq

    def offer(self, entry: Known) -> bool:
        """Keep ``entry`` if it is new or newer; True when the table changed."""
        if not self.is_news(entry.did, entry.seq):
            return False
        self.remove(entry.did)
        self.entries[entry.did] = entry
        self._fingerprints[bucket_of(entry.did)] ^= _h(entry.did, entry.seq)
        return True

    def remove(self, did: str) -> None:
        old = self.entries.pop(did, None)
        if old is not None:
            self._fingerprints[bucket_of(did)] ^= _h(did, old.seq)

    def expire(self, now: int) -> list[str]:
        gone = [did for did, entry in self.entries.items() if entry.expires < now]
        for did in gone:
            self.remove(did)
        return gone

    def summary(self) -> bytes:
        return b"".join(f.to_bytes(FINGERPRINT_SIZE, "big") for f in self._fingerprints)

    def differing(self, summary: bytes) -> list[int]:
        """Buckets whose fingerprint differs from ``summary`` (all of them if it is malformed)."""
        if len(summary) != SUMMARY_SIZE:
            return list(range(BUCKETS))
        return [b for b in range(BUCKETS)
                if int.from_bytes(summary[b * FINGERPRINT_SIZE:(b + 1) * FINGERPRINT_SIZE], "big") != self._fingerprints[b]]

    def digest(self, buckets: list[int]) -> list[tuple[str, int]]:
        wanted = set(buckets)
        return sorted((e.did, e.seq) for e in self.entries.values() if bucket_of(e.did) in wanted)

    def take(self, dids: list[str], *, limit: int, budget: int) -> tuple[tuple[bytes, ...], int]:
        """The announcements of ``dids`` (at most ``limit``) that fit in ``budget`` bytes; and the budget left."""
        out = []
        for did in dids[:limit]:
            data = self.entries[did].data
            if budget < len(data):
                break
            budget -= len(data)
            out.append(data)
        return tuple(out), budget

    def compare(self, theirs: list[tuple[str, int]], buckets: list[int]) -> tuple[list[str], list[str]]:
        """Given the other side's digest of ``buckets``: (dids they lack or hold older, dids I want)."""
        their_seq = dict(theirs)
        mine = {did: seq for did, seq in self.digest(buckets)}
        they_lack = [did for did, seq in mine.items() if their_seq.get(did, -1) < seq]
        i_want = [did for did, seq in their_seq.items() if mine.get(did, -1) < seq]
        return they_lack, i_want


__all__ = ["GossipTable", "Known", "BUCKETS", "SUMMARY_SIZE", "bucket_of"]
