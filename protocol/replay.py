"""The replay guard: message ids seen per sender, until they could no longer pass the time window.

It is a pure object: the caller passes ``now`` and persists what
``take`` (per message) or ``drain_new`` hands out, and ``load`` restores it after a restart, so that a
restart does not reopen a replay window.

Memory is bounded per id: a (sender, message id) pair is kept as a 64-bit keyed hash (BLAKE2b with a key
drawn when the guard is made, so no sender can aim for another's ids), in one set, and in an array per second
of expiry from which whole seconds are forgotten at once: 78 bytes per id, where a dict of (sender, id) ->
expiry with a heap to expire them took 242 (python -m bench.replay). Two different ids share a hash with probability
2^-64 per pair: at the limit of 4,000,000 ids, a genuine message is refused as a replay about once in 10^12
messages, and its sender sends it again under a new id. The limit is about 12,000 messages/s sustained over
the 330-second window, four times what one node serves (bench/query.py); beyond it the guard refuses with
``unavailable`` rather than forget early.
"""

from __future__ import annotations

import hashlib
import os
from array import array
from collections.abc import Iterable
from typing import Final

from protocol.errors import ErrorCode, RemoteProtocolError

DEFAULT_LIMIT: Final = 4_000_000

Entry = tuple[str, bytes, int]  # sender did, message id, forget after (seconds)


class ReplayGuard:
    def __init__(self, *, skew: int = 30, limit: int = DEFAULT_LIMIT) -> None:
        self._skew = skew
        self._limit = limit
        self._key = os.urandom(16)
        self._seen: set[int] = set()
        self._by_second: dict[int, array[int]] = {}  # forget-after second -> the hashes to forget then
        self._oldest = 0  # no second before this one holds anything
        self._new: dict[tuple[str, bytes], Entry] = {}  # accepted, not yet handed out to be persisted

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, key: tuple[str, bytes]) -> bool:
        return self._hash(*key) in self._seen

    def _hash(self, sender: str, message_id: bytes) -> int:
        digest = hashlib.blake2b(sender.encode() + b"\0" + message_id, digest_size=8, key=self._key).digest()
        return int.from_bytes(digest, "big")

    def load(self, entries: Iterable[Entry]) -> None:
        for sender, message_id, forget_after in entries:
            self._add(self._hash(sender, message_id), forget_after)

    def check(self, sender: str, message_id: bytes, now: int) -> None:
        """Raise ``replay`` if this (sender, id) was seen (or ``unavailable`` if the guard is full)."""
        self.prune(now)
        if self._hash(sender, message_id) in self._seen:
            raise RemoteProtocolError(
                ErrorCode.REPLAY, "message id was already received", sender=sender, message_id=message_id
            )
        if len(self._seen) >= self._limit:
            # Forgetting early would reopen a replay window; refusing is safe.
            raise RemoteProtocolError(ErrorCode.UNAVAILABLE, "replay guard is full, try again later")

    def remember(self, sender: str, message_id: bytes, expires: int) -> None:
        """Remember an accepted message until it could no longer pass the time window."""
        forget_after = expires + self._skew
        self._add(self._hash(sender, message_id), forget_after)
        self._new[(sender, message_id)] = (sender, message_id, forget_after)

    def check_and_remember(self, sender: str, message_id: bytes, expires: int, now: int) -> None:
        self.check(sender, message_id, now)
        self.remember(sender, message_id, expires)

    def _add(self, digest: int, forget_after: int) -> None:
        if digest in self._seen:
            return
        self._seen.add(digest)
        second = self._by_second.get(forget_after)
        if second is None:
            second = self._by_second[forget_after] = array("Q")
            self._oldest = min(self._oldest, forget_after) if self._oldest else forget_after
        second.append(digest)

    def prune(self, now: int) -> int:
        """Forget ids whose messages would now fail the time window anyway (forget-after before ``now``)."""
        if not self._by_second or self._oldest >= now:
            return 0
        removed = 0
        for second in [s for s in self._by_second if s < now]:
            digests = self._by_second.pop(second)
            self._seen.difference_update(digests)
            removed += len(digests)
        self._oldest = min(self._by_second, default=0)
        return removed

    def drain_new(self) -> list[Entry]:
        """Ids remembered since the last call, for the node to persist."""
        new, self._new = self._new, {}
        return list(new.values())

    def take(self, sender: str, message_id: bytes) -> list[Entry]:
        """The one id of this message, if it was remembered and not yet handed out: persisted with the writes of
        the request it came with, so that the id stands or falls with that request alone."""
        entry = self._new.pop((sender, message_id), None)
        return [entry] if entry is not None else []


__all__ = ["ReplayGuard", "Entry"]
