"""The replay guard: message ids seen per sender, until they could no longer pass the time window.

It is a pure object: the caller passes ``now`` and persists what
``drain_new`` hands out, and ``load`` restores it after a restart, so that a
restart does not reopen a replay window.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Final

from protocol.errors import ErrorCode, RemoteProtocolError

DEFAULT_LIMIT: Final = 2_000_000

Entry = tuple[str, bytes, int]  # sender did, message id, forget after (seconds)


class ReplayGuard:
    def __init__(self, *, skew: int = 30, limit: int = DEFAULT_LIMIT) -> None:
        self._skew = skew
        self._limit = limit
        self._seen: dict[tuple[str, bytes], int] = {}
        self._expiry: list[tuple[int, str, bytes]] = []
        self._new: list[Entry] = []

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, key: tuple[str, bytes]) -> bool:
        return key in self._seen

    def load(self, entries: Iterable[Entry]) -> None:
        for sender, message_id, forget_after in entries:
            self._add(sender, message_id, forget_after)

    def check(self, sender: str, message_id: bytes, now: int) -> None:
        """Raise ``replay`` if this (sender, id) was seen (or ``unavailable`` if the guard is full)."""
        self.prune(now)
        if (sender, message_id) in self._seen:
            raise RemoteProtocolError(
                ErrorCode.REPLAY, "message id was already received", sender=sender, message_id=message_id
            )
        if len(self._seen) >= self._limit:
            # Forgetting early would reopen a replay window; refusing is safe.
            raise RemoteProtocolError(ErrorCode.UNAVAILABLE, "replay guard is full, try again later")

    def remember(self, sender: str, message_id: bytes, expires: int) -> None:
        """Remember an accepted message until it could no longer pass the time window."""
        forget_after = expires + self._skew
        self._add(sender, message_id, forget_after)
        self._new.append((sender, message_id, forget_after))

    def check_and_remember(self, sender: str, message_id: bytes, expires: int, now: int) -> None:
        self.check(sender, message_id, now)
        self.remember(sender, message_id, expires)

    def _add(self, sender: str, message_id: bytes, forget_after: int) -> None:
        self._seen[(sender, message_id)] = forget_after
        heapq.heappush(self._expiry, (forget_after, sender, message_id))

    def prune(self, now: int) -> int:
        """Forget ids whose messages would now fail the time window anyway."""
        removed = 0
        while self._expiry and self._expiry[0][0] < now:
            _, sender, message_id = heapq.heappop(self._expiry)
            if self._seen.pop((sender, message_id), None) is not None:
                removed += 1
        return removed

    def drain_new(self) -> list[Entry]:
        """Ids remembered since the last call, for the node to persist."""
        new, self._new = self._new, []
        return new


__all__ = ["ReplayGuard", "Entry"]
