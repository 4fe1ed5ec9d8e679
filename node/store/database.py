"""The node's SQLite store (aiosqlite): one connection, group commit, migrations.

Discipline: one aiosqlite connection (its own thread, so the event loop never
waits for a write or a long read); every write goes through ``write`` which
groups the writes of one event-loop turn into one transaction (group commit);
each caller's future resolves only after that commit. A read that an index
bounds to a few pages (``lookup``) costs less on the event loop's thread, through
a read-only connection of its own, than the hop to the connection's thread.
Checkpoints run beside the commits, not in them. WAL with synchronous=NORMAL
survives a killed process; FULL is configurable for power-loss durability.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiosqlite

from node.errors import StorageError
from node.store.schema import MIGRATIONS

log = logging.getLogger(__name__)
# aiosqlite logs every statement with its parameters at DEBUG: records, so personal data. Never, whatever the
# level the operator sets for the rest.
logging.getLogger("aiosqlite").setLevel(logging.INFO)

Statement = tuple[str, Sequence[Any] | Iterable[Sequence[Any]], bool]  # sql, params, many
T = TypeVar("T")


class Journal(Protocol):
    def prepare(self, statements: list[Statement]) -> list[Statement]: ...

    def rolled_back(self) -> None: ...


class Store:
    """An async context manager around one SQLite file."""

    def __init__(self, path: Path, *, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self._synchronous = synchronous
        self._db: aiosqlite.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._pending: list[tuple[list[Statement], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._written = False  # since the last checkpoint
        self._closing = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._journal: Journal | None = None
        self._observers: list[tuple[str | tuple[str, ...], Callable[[Statement], None]]] = []
        # Threads of the store's own for what runs beside the writer (reads aside, checkpoints, the audit check):
        # the event loop's default executor also resolves host names, and a name that resolves slowly (a member's
        # endpoint) holds a thread there for the resolver's whole timeout.
        self._aside = ThreadPoolExecutor(max_workers=ASIDE_THREADS, thread_name_prefix="iwlz-store-aside")

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StorageError("store is not open")
        return self._db

    async def open(self) -> None:
        if self._synchronous not in ("NORMAL", "FULL"):
            raise StorageError("synchronous must be NORMAL or FULL")
        _private(self.path)
        try:
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute(f"PRAGMA synchronous={self._synchronous}")
            await self._db.execute("PRAGMA foreign_keys=ON")
            # 32 MiB of pages (the default is 2 MiB): inserts into a register of a million records with random ids
            # touch index pages all over the file.
            await self._db.execute("PRAGMA cache_size=-32768")
            # Checkpoints run beside the commits (``_checkpoint_loop``); a commit checkpoints only when they fell
            # this far behind.
            await self._db.execute(f"PRAGMA wal_autocheckpoint={_FALLEN_BEHIND}")
            # When a write starts the WAL over (after a checkpoint copied all of it), the file is cut back to this
            # size: a WAL that grew past it (a long read held the checkpoints back) would otherwise keep the disk
            # space for as long as the node runs.
            await self._db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            await self._migrate()
            self._reader = open_reader(self.path)
        except sqlite3.Error as exc:
            await self._drop_db()
            raise StorageError(f"cannot open the store at {self.path}: {describe(exc)}") from exc
        for suffix in ("-wal", "-shm"):  # SQLite creates them with the database's mode; older ones may not have it
            _private(self.path.with_name(self.path.name + suffix), create=False)
        self._flusher = asyncio.create_task(self._flush_loop(), name="store-group-commit")
        self._checkpointer = asyncio.create_task(self._checkpoint_loop(), name="store-checkpoint")

    async def _drop_db(self) -> None:
        """Close the connection an open that failed made: its thread would keep the process from exiting."""
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def _checkpoint_loop(self) -> None:
        """Copy what the WAL holds into the database every CHECKPOINT_EVERY seconds, on a thread and a connection
        of its own. SQLite would do it inside the commit that fills the WAL past 1,000 pages, and every reply
        waiting for that commit (a query's audit entry) would wait for the copy and its two fsyncs too: at
        ~2,500 queries/s that is every ~2 s, and the 64 replies in that commit are the tail of the latencies.
        PASSIVE: it never waits for a reader or a writer; a page a reader still needs is copied the next time."""
        while not self._closed:
            try:  # closing lets a checkpoint under way end first
                await asyncio.wait_for(self._closing.wait(), CHECKPOINT_EVERY)
            except asyncio.TimeoutError:
                pass
            if not self._written or self._closed:
                continue
            self._written = False
            try:
                await self.run_aside(_checkpoint, self.path)
            except sqlite3.Error as exc:  # the disk, say: the commits checkpoint once it falls far behind
                self._written = True
                log.warning("checkpoint of the store's WAL failed: %s", describe(exc))

    async def _migrate(self) -> None:
        (version,) = await (await self.db.execute("PRAGMA user_version")).fetchone()  # type: ignore[misc]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await self.db.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")
            log.info("store migrated to schema version %d", number)

    async def close(self) -> None:
        """Flush pending writes and close; calling it twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        if self._checkpointer is not None:
            await self._checkpointer
        if self._flusher is not None:
            self._wakeup.set()
            self._flusher.cancel()
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass
        if self._pending:
            await self._flush(self._pending)
            self._pending = []
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._db is not None:
            await self._db.close()
            self._db = None
        self._aside.shutdown(wait=False, cancel_futures=True)

    def run_aside(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``function(*args)`` on one of the store's own threads (beside the writer, never on the event loop's)."""
        return asyncio.get_running_loop().run_in_executor(self._aside, function, *args)

    # Reads ----------------------------------------------------------------

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row | tuple[Any, ...]]:
        try:
            return list(await self.db.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise StorageError(f"store read failed: {describe(exc)}") from exc

    async def lookup(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """``fetchall`` for a read an index bounds to a few pages (a record by its id, a client's records, the steps
        of authority over one subject), on this thread: the hop to the connection's thread costs ~45 µs of CPU
        more than such a read (docs/DECISIONS.md). The reader never waits for a lock: when SQLite answers busy
        (a connection recovering the WAL after a crash) the read takes the hop, where waiting blocks no one."""
        reader = self._reader
        if reader is not None:
            try:
                return reader.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise StorageError(f"store read failed: {describe(exc)}") from exc
            except sqlite3.Error as exc:
                raise StorageError(f"store read failed: {describe(exc)}") from exc
        return [tuple(row) for row in await self.fetchall(sql, params)]

    async def read_aside(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """``fetchall`` on a thread and a connection of its own, for a read whose cost follows what waits, not the
        few pages ``lookup`` takes (the outbox's counts under a backlog of a million: tens of milliseconds): on the
        connection's thread every commit would wait behind it, on this thread every request. A WAL reader holds
        neither up."""
        try:
            return await self.run_aside(_read_aside, self.path, sql, params)
        except sqlite3.Error as exc:
            raise StorageError(f"store read failed: {describe(exc)}") from exc

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = await self.fetchall(sql, params)
        return tuple(rows[0]) if rows else None

    # Writes (group commit) -----------------------------------------------

    async def delete_in_slices(self, table: str, where: str, params: Sequence[Any], count: int) -> None:
        """Delete the ``count`` rows of ``table`` that ``where`` (a WHERE clause) names, a slice at a time, each in a
        commit of its own: retention removing a million rows in one transaction would hold every other write (and
        every reply waiting for its audit entry) for seconds."""
        for _ in range(-(-count // DELETE_SLICE)):
            await self.write([(f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} {where} "
                               f"LIMIT {DELETE_SLICE})", params, False)])

    def write(self, statements: list[Statement]) -> asyncio.Future[None]:
        """Queue statements for the next group commit; the future resolves after COMMIT."""
        if self._closed:
            raise StorageError("store is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((statements, future))
        self._wakeup.set()
        return future

    async def _flush_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # Let every request handled in this loop turn add its writes first.
            await asyncio.sleep(0)
            batch, self._pending = self._pending, []
            if batch:
                try:
                    await self._flush(batch)
                except Exception as exc:  # noqa: BLE001 - a bug must fail the writers, not stop every later commit
                    log.exception("group commit failed unexpectedly")
                    if self._journal is not None:
                        self._journal.rolled_back()  # the chain in memory goes back to what is committed
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(StorageError(f"store write failed: {exc.__class__.__name__}"))

    def observe(self, prefixes: str | tuple[str, ...], committed: Callable[[Statement], None]) -> None:
        """Call ``committed`` with each statement whose SQL starts with one of ``prefixes``, once its transaction
        has committed (a cache kept beside a table learns what changed in it, whoever wrote it)."""
        self._observers.append((prefixes, committed))

    def set_journal(self, journal: Journal) -> None:
        """The audit log: it turns its entries into rows at commit time, in commit order."""
        self._journal = journal

    async def _flush(self, batch: list[tuple[list[Statement], asyncio.Future[None]]]) -> None:
        statements = [s for item, _ in batch for s in item]
        if self._journal is not None:
            statements = self._journal.prepare(statements)
        try:
            # One hop to the connection's thread for the whole transaction: each awaited
            # aiosqlite call costs a thread hand-off, which would dominate a busy node.
            await self.db._execute(_run_transaction, self.db._conn, statements)  # noqa: SLF001
        except (sqlite3.Error, OverflowError, ValueError, TypeError) as exc:
            # A value SQLite cannot take (an integer beyond 64 bits) fails its own writes, not the batch.
            log.error("group commit of %d writes failed: %s", len(batch), describe(exc))
            if self._journal is not None:
                self._journal.rolled_back()
            if len(batch) > 1:  # retry one by one so that one bad write does not fail the others
                for item in batch:
                    await self._flush([item])
                return
            for _, future in batch:
                if not future.done():
                    future.set_exception(StorageError(f"store write failed: {describe(exc)}"))
            return
        self._written = True
        for prefixes, committed in self._observers:
            for statement in statements:
                if statement[0].startswith(prefixes):
                    committed(statement)
        for _, future in batch:
            if not future.done():
                future.set_result(None)


CHECKPOINT_EVERY = 1.0  # seconds
ASIDE_THREADS = 4  # reads aside at once (each its own connection), a checkpoint, an audit check
DELETE_SLICE = 5_000  # rows a retention delete removes per commit: 7-18 ms of the writer each (500,000 delivered)
_FALLEN_BEHIND = 16_000  # pages (64 MiB): a commit checkpoints itself only when the checkpoints fell this far behind
# Bytes: what the WAL holds between two checkpoints stays below it, even under an import (the commits checkpoint
# themselves at 64 MiB), so it is not cut and grown again every second; a WAL that a long read let grow past it
# shrinks back once checkpointed.
WAL_SIZE_LIMIT = _FALLEN_BEHIND * 4096 + 16 * 1024 * 1024


def _checkpoint(path: Path) -> None:
    """On a thread, with a connection of its own for this one checkpoint (so none is ever closed while in use)."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    finally:
        connection.close()


def _read_aside(path: Path, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """On a thread, with a reader of its own for this one read (opened, used and closed in ~0.7 ms for the outbox's
    counts on a small database: nothing beside a scrape every few seconds)."""
    reader = open_reader(path, cache_kib=1024, busy_timeout=ASIDE_BUSY_TIMEOUT)
    try:
        return reader.execute(sql, params).fetchall()
    finally:
        reader.close()


# A reader setting up its snapshot can find another connection moving the WAL on (a commit, a checkpoint) and be
# answered busy. Off the event loop it may wait for that: with none, many reads at once (a flood of scrapes) failed.
ASIDE_BUSY_TIMEOUT = 5.0  # seconds


def open_reader(path: Path, *, cache_kib: int = 8192, busy_timeout: float = 0.0) -> sqlite3.Connection:
    """A connection for ``lookup``: reads only (SQLite refuses a write on it), waits for a lock no longer than
    ``busy_timeout`` (none on the event loop's thread), and holds no read transaction between reads (autocommit), so
    it never holds a checkpoint back."""
    reader = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout, check_same_thread=False)
    reader.execute("PRAGMA query_only=1")
    reader.execute(f"PRAGMA cache_size=-{cache_kib}")
    return reader


def describe(exc: BaseException) -> str:
    """What went wrong, in words an operator acts on (never a value from the data)."""
    code = getattr(exc, "sqlite_errorcode", None)
    code = code & 0xFF if isinstance(code, int) else None  # the primary code of an extended one
    if code == sqlite3.SQLITE_FULL or "disk is full" in str(exc):
        return "the disk is full"
    if code in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY):
        return f"the disk cannot be written ({getattr(exc, 'sqlite_errorname', exc.__class__.__name__)})"
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return "the database file is damaged"
    if isinstance(exc, OverflowError):
        return "a number is too large to store"
    return exc.__class__.__name__


def _private(path: Path, *, create: bool = True) -> None:
    """The database holds personal data: only the node's user may read it (0600, like the keys)."""
    try:
        if create and not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        if path.exists():
            os.chmod(path, 0o600)
    except OSError as exc:
        raise StorageError(f"cannot create the store at {path}: {exc.strerror}") from exc


def _runs(statements: list[Statement]) -> Iterator[tuple[str, list[Any]]]:
    """Each run of one SQL text in a row, with the rows of parameters it is run with, in order. One call per run:
    an import's thousands of inserts of a kind cost ~1.7 µs less each than a call apiece, and the thread hands
    the GIL to the event loop less often."""
    run_sql: str | None = None
    rows: list[Any] = []
    for sql, params, many in statements:
        if sql != run_sql:
            if run_sql is not None and rows:
                yield run_sql, rows
            run_sql, rows = sql, []
        if many:
            rows.extend(params)  # type: ignore[arg-type]
        else:
            rows.append(params)
    if run_sql is not None and rows:
        yield run_sql, rows


def _run_transaction(conn: sqlite3.Connection, statements: list[Statement]) -> None:
    """Runs in the connection's worker thread."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, rows in _runs(statements):
            if len(rows) == 1:
                conn.execute(sql, rows[0])
            else:
                conn.executemany(sql, rows)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled back already (a full disk does): keep the first error
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        raise


__all__ = ["Store", "Statement", "MIGRATIONS", "open_reader"]
