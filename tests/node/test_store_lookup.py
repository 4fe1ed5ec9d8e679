"""Store.lookup: a read an index bounds, on the event loop's own thread through a read-only connection
(node/store/database.py). It sees every committed write at once, never blocks the loop on a lock, and writes
nothing; when SQLite answers busy, it reads on the store's thread, where waiting blocks no one."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from node.errors import StorageError
from node.store.database import Store

SETTING = "INSERT INTO settings (name, value) VALUES (?, ?)"
READ = "SELECT value FROM settings WHERE name = ?"


@pytest.mark.asyncio
async def test_a_lookup_sees_a_write_as_soon_as_it_committed_and_agrees_with_the_thread(tmp_path: Path) -> None:
    async with Store(tmp_path / "node.sqlite3") as store:
        assert await store.lookup(READ, ("a",)) == []
        await store.write([(SETTING, ("a", "1"), False)])
        assert await store.lookup(READ, ("a",)) == [("1",)]
        await store.write([("UPDATE settings SET value = ? WHERE name = ?", ("2", "a"), False)])
        assert await store.lookup(READ, ("a",)) == [("2",)] == [tuple(r) for r in await store.fetchall(READ, ("a",))]


@pytest.mark.asyncio
async def test_a_lookup_writes_nothing(tmp_path: Path) -> None:
    async with Store(tmp_path / "node.sqlite3") as store:
        with pytest.raises(StorageError):
            await store.lookup(SETTING, ("b", "1"))
        assert await store.fetchall(READ, ("b",)) == []


class _Busy:
    """A reader SQLite answers busy (a connection recovering the WAL after a crash holds it for a moment; no
    connection can take the exclusive lock that would make it busy while the store is open)."""

    def execute(self, *_: object) -> None:
        error = sqlite3.OperationalError("database is locked")
        error.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
        raise error


@pytest.mark.asyncio
async def test_a_lookup_sqlite_answers_busy_is_read_on_the_stores_thread(tmp_path: Path) -> None:
    async with Store(tmp_path / "node.sqlite3") as store:
        await store.write([(SETTING, ("c", "1"), False)])
        reader, store._reader = store._reader, _Busy()  # type: ignore[assignment]  # noqa: SLF001
        try:
            assert await store.lookup(READ, ("c",)) == [("1",)]
        finally:
            store._reader = reader  # noqa: SLF001


def _in_the_database_file(path: Path, tmp_path: Path, name: str) -> bool:
    """Whether the database file alone (what a checkpoint copied from the WAL) holds setting ``name``."""
    import shutil

    alone = tmp_path / "alone.sqlite3"
    shutil.copyfile(path, alone)
    with closing(sqlite3.connect(alone)) as db, db:
        return db.execute(READ, (name,)).fetchall() != []


@pytest.mark.asyncio
async def test_commits_leave_the_checkpoint_to_the_background(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit that fills the WAL does not copy it into the database (every reply waiting for that commit would
    wait for the copy); the store's checkpointer does, within CHECKPOINT_EVERY of a write."""
    import node.store.database as database

    monkeypatch.setattr(database, "CHECKPOINT_EVERY", 3600.0)
    path = tmp_path / "node.sqlite3"
    async with Store(path):
        pass  # the last connection to close copies the WAL in: the file holds the schema
    async with Store(path) as store:
        await store.write([(SETTING, [(f"n{i}", "x" * 500) for i in range(10_000)], True)])  # ~1,500 pages of WAL
        assert not _in_the_database_file(path, tmp_path, "n1")
    monkeypatch.setattr(database, "CHECKPOINT_EVERY", 0.05)
    async with Store(path) as store:
        await store.write([(SETTING, ("later", "1"), False)])
        for _ in range(100):
            if _in_the_database_file(path, tmp_path, "later"):
                break
            await asyncio.sleep(0.05)
        assert _in_the_database_file(path, tmp_path, "later")


@pytest.mark.asyncio
async def test_the_wal_file_shrinks_back_after_a_large_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A WAL that grew past WAL_SIZE_LIMIT (a long read held the checkpoints back): once it is checkpointed, the next
    write starts it over and cuts the file back, instead of keeping the disk space for as long as the node runs.
    (The limit is made small here so that a few MiB of writes pass it.)"""
    import node.store.database as database

    monkeypatch.setattr(database, "CHECKPOINT_EVERY", 0.05)
    monkeypatch.setattr(database, "WAL_SIZE_LIMIT", 4 * 1024 * 1024)
    path = tmp_path / "node.sqlite3"
    wal = tmp_path / "node.sqlite3-wal"
    async with Store(path) as store:
        await store.write([(SETTING, [(f"n{i}", "x" * 3000) for i in range(10_000)], True)])  # ~40 MiB of WAL
        grown = wal.stat().st_size
        assert grown > 2 * database.WAL_SIZE_LIMIT
        for n in range(100):
            await store.write([(SETTING, (f"later{n}", "1"), False)])
            if wal.stat().st_size <= database.WAL_SIZE_LIMIT:
                break
            await asyncio.sleep(0.05)
        assert wal.stat().st_size <= database.WAL_SIZE_LIMIT
        assert await store.lookup("SELECT count(*) FROM settings WHERE name LIKE 'n%'") == [(10_000,)]


@pytest.mark.asyncio
async def test_reads_aside_side_by_side_with_commits_all_answer(tmp_path: Path) -> None:
    """``read_aside`` opens a reader of its own per read (the outbox's counts for a scrape). Many at once, beside
    commits and the background checkpoint, met SQLite's busy (a reader setting up its snapshot while another
    connection moves the WAL on) and failed: a flood of /metrics scrapes answered some with 503 and a traceback.
    Off the event loop, such a reader may wait a moment for the lock instead."""
    async with Store(tmp_path / "node.sqlite3") as store:
        await store.write([(SETTING, ("a", "0"), False)])

        async def writes() -> None:
            for i in range(200):
                await store.write([("UPDATE settings SET value = ? WHERE name = 'a'", (str(i),), False)])

        async def reads() -> list[list[tuple[object, ...]]]:
            return await asyncio.gather(*(store.read_aside("SELECT count(*) FROM settings") for _ in range(300)))

        _, answers = await asyncio.gather(writes(), reads())
        assert answers == [[(1,)]] * 300


@pytest.mark.asyncio
async def test_reads_aside_and_checkpoints_do_not_wait_for_the_loops_shared_threads(tmp_path: Path) -> None:
    """asyncio resolves host names on the event loop's default executor (a few threads): an endpoint whose name
    resolves slowly (a member's, from its announcement) holds one for the resolver's whole timeout, and every
    other job there waits. The store's reads aside, its checkpoints and the audit check ran there too."""
    import threading

    async with Store(tmp_path / "node.sqlite3") as store:
        await store.write([(SETTING, ("a", "1"), False)])
        loop = asyncio.get_running_loop()
        gate = threading.Event()
        held = [loop.run_in_executor(None, gate.wait, 30) for _ in range(64)]  # every shared thread, taken
        try:
            assert await asyncio.wait_for(store.read_aside(READ, ("a",)), 10) == [("1",)]
            assert await asyncio.wait_for(store.run_aside(lambda: "ran"), 10) == "ran"
        finally:
            gate.set()
            await asyncio.gather(*held)
