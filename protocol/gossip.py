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


SHORT_ID_SIZE: Final = 8


def short_id(did: str) -> bytes:
    """What digests and wants name a node by: the first 8 bytes of SHA-256(did)."""
    return hashlib.sha256(did.encode()).digest()[:SHORT_ID_SIZE]


def bucket_of(did: str) -> int:
    return short_id(did)[0] % BUCKETS


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
        self._dids: dict[bytes, str] = {}

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
        self._dids[short_id(entry.did)] = entry.did
        self._fingerprints[bucket_of(entry.did)] ^= _h(entry.did, entry.seq)
        return True

    def remove(self, did: str) -> None:
        old = self.entries.pop(did, None)
        self._dids.pop(short_id(did), None)
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

    def digest(self, buckets: list[int]) -> list[tuple[bytes, int]]:
        """(short id, seq) of every entry in ``buckets``."""
        wanted = set(buckets)
        return sorted((short_id(e.did), e.seq) for e in self.entries.values() if bucket_of(e.did) in wanted)

    def resolve(self, ids: tuple[bytes, ...] | list[bytes]) -> list[str]:
        """The dids of the short ids this table holds."""
        return [self._dids[i] for i in ids if i in self._dids]

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

    def compare(self, theirs: list[tuple[bytes, int]], buckets: list[int]) -> tuple[list[str], list[bytes]]:
        """Given the other side's digest of ``buckets``: (dids they lack or hold older, short ids I want)."""
        their_seq = dict(theirs)
        mine = dict(self.digest(buckets))
        they_lack = [self._dids[i] for i, seq in mine.items() if their_seq.get(i, -1) < seq]
        i_want = [i for i, seq in their_seq.items() if mine.get(i, -1) < seq]
        return they_lack, i_want


__all__ = ["GossipTable", "Known", "BUCKETS", "SUMMARY_SIZE", "bucket_of", "short_id"]
