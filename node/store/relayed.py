"""A worker process's store: it reads the node's database itself and hands its writes to the one process that
owns writes (docs/DECISIONS.md, "Every core").

Reads go through a connection of its own, in WAL mode beside the owner's, with ``query_only`` on: SQLite itself
refuses any write on it. Writes are grouped per loop turn as in ``Store`` and sent in one hand-over; each
caller's future resolves when the owner has committed its statements, or fails with what the owner said.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite

from node.errors import NodeError, ReplayedElsewhere, StorageError
from node.store.audit import portable
from node.store.database import Statement, Store, describe, open_reader
from node.store.schema import MIGRATIONS

# What the owner answers per group of statements: committed, a message id it already had, or not committed.
COMMITTED, REPLAYED, FAILED = "ok", "replay", "failed"
HandOver = Callable[[list[list[list[Any]]]], Awaitable[list[str]]]


class RelayedStore(Store):
    def __init__(self, path: Any, hand_over: HandOver) -> None:
        super().__init__(path)
        self.hand_over = hand_over

    async def open(self) -> None:
        try:
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            await self._db.execute("PRAGMA query_only=1")
            await self._db.execute("PRAGMA cache_size=-8192")
            (version,) = await (await self._db.execute("PRAGMA user_version")).fetchone()  # type: ignore[misc]
            if version == len(MIGRATIONS):
                self._reader = open_reader(self.path)
        except sqlite3.Error as exc:
            await self._drop_db()
            raise StorageError(f"cannot read the store at {self.path}: {describe(exc)}") from exc
        if version != len(MIGRATIONS):
            await self._drop_db()
            raise StorageError(f"the store is at schema {version}, this worker reads schema {len(MIGRATIONS)}")
        self._flusher = asyncio.create_task(self._flush_loop(), name="store-hand-over")

    async def _flush(self, batch: list[tuple[list[Statement], asyncio.Future[None]]]) -> None:
        try:
            outcomes = await self.hand_over([[portable(s) for s in statements] for statements, _ in batch])
        except NodeError as exc:
            outcomes = [FAILED] * len(batch)
            error: StorageError = StorageError(f"the process that owns writes did not take them: {exc}")
        else:
            error = StorageError("the process that owns writes could not commit")
        if len(outcomes) != len(batch):
            outcomes = [FAILED] * len(batch)
        for (_, future), outcome in zip(batch, outcomes):
            if future.done():
                continue
            if outcome == COMMITTED:
                future.set_result(None)
            elif outcome == REPLAYED:
                future.set_exception(ReplayedElsewhere("message id was already received"))
            else:
                future.set_exception(error)


__all__ = ["RelayedStore", "COMMITTED", "REPLAYED", "FAILED"]
