"""A count of committed changes to the records and the steps of authority, shared by the process that owns
writes with its workers through a file they map into memory: a worker keeps those in memory too, and drops
what it kept the moment the count moves (reading it costs a memory read, not a trip to SQLite).

The owner moves the count after the commit and before anyone who wrote is told it committed, so a peer that
hears of a change (a notification is sent after the commit) and asks again finds the count moved.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import Final

from node.errors import StorageError

# The SQL of writes after which what a worker keeps is stale: a new version, one that stops being current, a
# removed record, a step of authority. Signatures stored later are not among them: a worker signs the same
# version to the same bytes itself (deterministic encoding and Ed25519).
CHANGES: Final = ("INSERT INTO records", "UPDATE records SET current", "DELETE FROM records",
                  "INSERT INTO authority_links")
_SIZE: Final = 8


class ChangeCount:
    def __init__(self, path: Path, *, writer: bool) -> None:
        self.path = path
        try:
            if writer:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
                os.ftruncate(fd, _SIZE)
            else:
                fd = os.open(path, os.O_RDONLY)
            try:
                self._map = mmap.mmap(fd, _SIZE, access=mmap.ACCESS_WRITE if writer else mmap.ACCESS_READ)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StorageError(f"cannot map the change count at {path}: {exc.strerror}") from exc
        self._value = 0

    def bump(self, _: object = None) -> None:
        self._value += 1
        self._map[:_SIZE] = struct.pack("<Q", self._value)

    def value(self) -> int:
        return int(struct.unpack("<Q", self._map[:_SIZE])[0])

    def close(self) -> None:
        self._map.close()


__all__ = ["ChangeCount", "CHANGES"]
