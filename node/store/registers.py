"""The registers a node holds: versioned, signed record versions in the store.

An update is a new version and a delete a tombstone version; nothing is
overwritten. Every version a query hands out is signed by this node, so it
can be traced to, and proven to come from, here. A version keeps only its
64-byte signature: the signed bytes are assembled again from its content,
its facts and the certificate it was signed under (deterministic encoding,
deterministic Ed25519). A version is signed when it is first read or by the
background signer, whichever comes first, so an import of a million records
does not wait for a million signatures (docs/DECISIONS.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from keys import Identity, cbor
from node.store.audit import Actor, AuditLog
from node.errors import ValidationError
from node.store.records import RECORD_TYPES, RecordType, add_years, checked_record, values_at
from node.store.database import Statement, Store
from node.store.kept import Kept
from node.store.packing import pack, unpack
from node.store.preparing import Batch, Prepared, Preparer, record_keys as _keys
from protocol.records import RecordSigner, RecordVersion, assemble_record, record_header, signing_certificate



@dataclass(slots=True, eq=False)
class StoredVersion:
    kind: str
    record_id: str
    version: int
    data: dict[str, Any] | None
    deleted: bool
    created_at: int
    make_signed: Callable[[], bytes] = field(repr=False)  # assembles or signs: only when the bytes are wanted
    _signed: bytes | None = field(default=None, repr=False)

    @property
    def signed(self) -> bytes:
        """The signed record (protocol/records.py) as any peer verifies it."""
        if self._signed is None:
            self._signed = self.make_signed()
        return self._signed

    def adopt_signed(self, signed: bytes) -> None:
        """Bytes signed elsewhere for this very version (the background signer's), unless it has its own: its first
        reader would otherwise sign it again and store the same signature once more."""
        if self._signed is None:
            self._signed = signed

    @property
    def path(self) -> str:
        return f"{self.kind}/{self.record_id}"

    def summary(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.record_id, "version": self.version, "deleted": self.deleted,
                "created_at": self.created_at, "data": self.data}


@dataclass(slots=True)
class BatchResult:
    """What a batch of an import did."""

    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)

    def count(self, action: str) -> None:
        if action == "C":
            self.created += 1
        elif action == "U":
            self.updated += 1
        else:
            self.deleted += 1


# (record id, old content, new content): a change the outbox plans notifications for (None: absent or deleted)
Change = tuple[str, dict[str, Any] | None, dict[str, Any] | None]
# The outbox plans the notifications of a batch of changes inside their transaction.
Notifier = Callable[[str, list[Change], int], Awaitable[list[Statement]]]
CACHE_SIZE = 10_000
IMPORT_QUIET = 5.0  # seconds after an import batch before the background signer takes the CPU
_INSERT_RECORD = ("INSERT INTO records (kind, record_id, version, signature, data, deleted, created_at, retain_until, "
                  "cert_hash, current) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)")
# A key names its record by the id of the record's first stored version (written before its keys, in the same
# transaction; removed only with the whole record).
_FIRST_VERSION = "(SELECT min(id) FROM records WHERE kind = ? AND record_id = ?)"
_INSERT_KEY = f"INSERT OR IGNORE INTO record_keys (name, value, record) VALUES (?, ?, {_FIRST_VERSION})"
_DELETE_KEY = f"DELETE FROM record_keys WHERE name = ? AND value = ? AND record = {_FIRST_VERSION}"


_RETIRE = "UPDATE records SET current = 0 WHERE kind = ? AND record_id = ? AND current = 1"
# A record's row before its keys, which name it; the keys its new content no longer has before the new ones.
_WRITE_ORDER = {_RETIRE: 0, _INSERT_RECORD: 1, _DELETE_KEY: 2, _INSERT_KEY: 3}
_COLUMNS = "kind, record_id, version, signed, signature, data, deleted, created_at, cert_hash"
_SELECT = f"SELECT {_COLUMNS} FROM records"
PURGE_SLICE = 500  # records retention removes per commit (their versions, keys and audit entries)
# Lookup keys whose value names a few records (a client's, an indicatie's); the others name thousands.
_NAMING_FEW = frozenset({"bsn", "wlzIndicatieID", "bemiddelingspecificatieID", "verzoekID", "leveringID"})
_COUNT = ("INSERT INTO register_counts (kind, current) VALUES (?, ?) "
          "ON CONFLICT (kind) DO UPDATE SET current = current + excluded.current")
_STORE_SIGNATURE = ("UPDATE records SET signature = ?, cert_hash = ? WHERE kind = ? AND record_id = ? AND version = ? "
                    "AND signed IS NULL")


class Registers:
    def __init__(self, store: Store, identity: Identity, certificate: bytes, role: str, audit: AuditLog,
                 retention: dict[str, dict[str, int]] | None = None, cache_size: int = CACHE_SIZE,
                 changes: Callable[[], int] | None = None, preparer: Preparer | None = None) -> None:
        self.store = store
        self.preparer = preparer or Preparer(use_process=False)
        # Current versions by (kind, id): this object is the only writer, so it can keep the
        # hot path of a query (one record by id) free of SQLite round trips. A worker process (node/relay) reads
        # what another process writes: it keeps them while the owner's change count (``changes``) stays put.
        self._current: Kept[tuple[str, str], StoredVersion | None] = Kept(cache_size, changes)
        self.identity = identity
        self.role = role
        self.audit = audit
        # Years to keep a record after it ended, or after it was withdrawn (deleted), per kind (config "retention").
        self.retention = retention or {}
        # Checks a record must pass before it is stored, beyond its schema (e.g. a Levering needs its toewijzing).
        self.checks: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {}
        self._lock = asyncio.Lock()
        # certificate hash -> the protected header of versions signed under it, and the signer's did
        self._headers: dict[bytes, tuple[bytes, str]] = {}
        self._signatures: list[tuple[bytes, bytes, str, str, int]] = []  # made on reading, not stored yet
        self._certificate_stored = False
        self.importing_until = 0.0  # the background signer waits until an import has been quiet this long
        self._unsigned_after = 0  # the background signer's place (rowid): every version before it is signed
        self._purges = 0  # purges so far: a pass that began before one does not move the signer's place
        self._counts: dict[str, int] = {}  # records (current, not deleted) per kind, as in register_counts
        self.switch_identity(identity, certificate)
        # The outbox plans notifications inside the record's transaction; it is woken after the commit.
        self.notifier: Notifier | None = None
        self.on_written: Callable[[], None] | None = None

    def switch_identity(self, identity: Identity, certificate: bytes) -> None:
        """Sign from now on with this key and certificate; resign_stale() brings the stored versions along."""
        self.identity = identity
        self.certificate = certificate
        self.cert_hash = hashlib.sha256(certificate).digest()
        self.signer = RecordSigner(identity, certificate)
        self._headers[self.cert_hash] = (self.signer.header, identity.did)
        self._certificate_stored = False
        self._signatures = []  # made under the earlier certificate: those versions are signed again when wanted
        self._current.clear()  # a worker's kept versions were signed under the earlier certificate

    def _certificate_statements(self) -> list[Statement]:
        """Keep the certificate the versions are signed under, with the first write that needs it."""
        if self._certificate_stored:
            return []
        return [("INSERT OR IGNORE INTO signing_certificates (cert_hash, did, certificate) VALUES (?, ?, ?)",
                 (self.cert_hash, self.identity.did, self.certificate), False)]

    async def load(self) -> None:
        """The certificates stored versions were signed under (to assemble their signed bytes)."""
        await self._write([])
        for cert_hash, did, certificate in await self.store.fetchall(
                "SELECT cert_hash, did, certificate FROM signing_certificates"):
            self._headers.setdefault(bytes(cert_hash), (record_header(did, bytes(certificate)), did))
        self._counts = {kind: int(n) for kind, n in await self.store.fetchall("SELECT kind, current FROM register_counts")}

    # Signed bytes: assembled from the signature, or signed now -----------------

    @staticmethod
    def _decoded(data: Any) -> tuple[bytes | None, dict[str, Any] | None]:
        """A row's stored content: its encoded bytes (as signed) and the decoded record (None: a tombstone)."""
        encoded = unpack(bytes(data)) if data is not None else None
        return encoded, cbor.decode_trusted(encoded) if encoded is not None else None

    def _row(self, row: Any) -> StoredVersion:
        kind, record_id, version, signed, signature, data, deleted, created_at, cert_hash = row
        encoded, content = self._decoded(data)
        version, deleted, created_at = int(version), bool(deleted), int(created_at)
        if signed is not None:  # written before schema 8: the whole bytes
            full = bytes(signed)
            return StoredVersion(kind, record_id, version, content, deleted, created_at, lambda: full, full)
        known = self._headers.get(bytes(cert_hash)) if signature is not None and cert_hash is not None else None
        if known is None:  # not signed yet (or under a certificate this node does not have): signed when wanted
            return self._unsigned(kind, record_id, version, content, encoded, deleted, created_at)
        header, did = known

        def assemble() -> bytes:
            record = RecordVersion(kind, record_id, version, did, created_at, deleted, content)
            return assemble_record(header, record, encoded, bytes(signature))

        return StoredVersion(kind, record_id, version, content, deleted, created_at, assemble)

    def _unsigned(self, kind: str, record_id: str, version: int, content: dict[str, Any] | None, encoded: bytes | None,
                  deleted: bool, created_at: int) -> StoredVersion:
        """A version whose signature is made the first time its bytes are wanted, and then kept."""
        def sign() -> bytes:
            cert_hash = self.cert_hash
            signature, signed = self._sign_now(kind, record_id, version, created_at, deleted, content, encoded)
            self._signatures.append((signature, cert_hash, kind, record_id, version))
            return signed

        return StoredVersion(kind, record_id, version, content, deleted, created_at, sign)

    def _sign_now(self, kind: str, record_id: str, version: int, created_at: int, deleted: bool,
                  content: dict[str, Any] | None, encoded: bytes | None) -> tuple[bytes, bytes]:
        """(signature, signed bytes) of a version under the current key and certificate."""
        record = RecordVersion(kind, record_id, version, self.identity.did, created_at, deleted, content)
        signature = self.signer.signature(record, encoded)
        return signature, assemble_record(self.signer.header, record, encoded, signature)

    async def _rows(self, sql: str, params: tuple[Any, ...], *, few: bool = True) -> list[StoredVersion]:
        """``few``: the read is one an index bounds to a few versions (``Store.lookup``)."""
        if len(self._signatures) >= 256:  # the background signer keeps them too; this bounds what waits
            await self.keep_signatures()
        rows = await (self.store.lookup if few else self.store.fetchall)(sql, params)
        return [self._row(r) for r in rows]

    async def _newest_rowid(self) -> int:
        rows = await self.store.lookup("SELECT max(rowid) FROM records")
        return int(rows[0][0] or 0)

    async def keep_signatures(self) -> None:
        """Store the signatures made on reading (Ed25519 is deterministic: one made twice is the same)."""
        pending, self._signatures = self._signatures, []
        if pending:
            await self._write([(_STORE_SIGNATURE, pending, True)])

    async def sign_unsigned(self, batch: int = 512) -> int:
        """The background signer: keep the signatures made on reading, then sign the versions no one has read
        yet, a batch at a time, while no import is running (it would take the import's CPU)."""
        await self.keep_signatures()
        done = 0
        while time.monotonic() >= self.importing_until:
            # By rowid from where the last pass ended, up to the newest version now: no index to keep up on every
            # insert, and a pass finds its place past what it read, so the next one reads only what came since (a
            # version written later has a higher rowid; a purge, which may free the highest, starts it over).
            purges, top = self._purges, await self._newest_rowid()
            # Aside: the first pass after a start reads every version once, and no commit waits for it.
            rows = await self.store.read_aside(
                f"SELECT rowid, {_COLUMNS} FROM records WHERE rowid > ? AND rowid <= ? AND signed IS NULL "
                "AND signature IS NULL ORDER BY rowid LIMIT ?", (self._unsigned_after, top, batch))
            if not rows:
                if purges == self._purges:
                    self._unsigned_after = max(self._unsigned_after, top)
                return done
            self._unsigned_after = int(rows[-1][0])
            for row in rows:
                version = self._row(row[1:])
                signed = version.signed  # made here: what this pass is for
                kept = self._current.peek((version.kind, version.record_id))  # the import kept it unsigned
                if kept is not None and kept.version == version.version:
                    kept.adopt_signed(signed)
            await self.keep_signatures()
            done += len(rows)
            await asyncio.sleep(0)  # let requests through between batches
        return done

    async def resign_stale(self, batch: int = 256) -> int:
        """Sign again, under the current certificate, every stored version signed under an earlier one.

        A version keeps its content, number and signing time; only the signature and the certificate it
        carries change, so it stays verifiable after the earlier certificate expires or is superseded.
        """
        done, after = 0, 0
        while True:
            # From where the last batch ended (by rowid), aside: each version is read once, and no commit waits.
            rows = await self.store.read_aside(
                f"SELECT rowid, {_COLUMNS} FROM records WHERE rowid > ? AND cert_hash IS NOT ? "
                "AND (signed IS NOT NULL OR signature IS NOT NULL) ORDER BY rowid LIMIT ?", (after, self.cert_hash, batch))
            if not rows:
                return done
            after = int(rows[-1][0])
            keep, signed_again = [], []
            for _, kind, record_id, version, signed, _, data, deleted, created_at, _ in rows:
                if signed is not None and signing_certificate(bytes(signed)) == self.certificate:
                    keep.append((kind, record_id, version))
                    continue
                encoded, content = self._decoded(data)
                signature, _ = self._sign_now(kind, record_id, int(version), int(created_at), bool(deleted), content, encoded)
                signed_again.append((signature, self.cert_hash, kind, record_id, version))
            statements: list[Statement] = [(
                "UPDATE records SET signed = NULL, signature = ?, cert_hash = ? WHERE kind = ? AND record_id = ? AND version = ?",
                signed_again, True)]
            if keep:  # full bytes from before schema 8, already under this certificate
                statements.append(("UPDATE records SET cert_hash = ? WHERE kind = ? AND record_id = ? AND version = ?",
                                   [(self.cert_hash, *k) for k in keep], True))
            await self._write(statements)
            self._current.clear()
            done += len(rows)
            await asyncio.sleep(0)  # let requests through between batches

    def _holds(self, kind: str) -> RecordType:
        record_type = RECORD_TYPES.get(kind)
        if record_type is None:
            raise ValidationError(f"unknown record type {kind!r}; known: {', '.join(RECORD_TYPES)}")
        if record_type.source_role not in ("*", self.role):
            raise ValidationError(f"a {self.role} node does not hold the {record_type.register} register ({kind})")
        return record_type

    async def current(self, kind: str, record_id: str) -> StoredVersion | None:
        key = (kind, record_id)
        seen = self._current.seen()
        found, kept = self._current.get(key)
        if found:
            return kept
        rows = await self._rows(f"{_SELECT} WHERE kind = ? AND record_id = ? AND current = 1", (kind, record_id))
        version = rows[0] if rows else None
        # A write may have landed while we read: here, or (a worker) in the process that owns writes.
        self._current.keep(key, version, seen)
        return version

    async def history(self, kind: str, record_id: str) -> list[StoredVersion]:
        return await self._rows(f"{_SELECT} WHERE kind = ? AND record_id = ? ORDER BY version", (kind, record_id))

    async def find(self, name: str, value: str, *, kinds: tuple[str, ...] | None = None, history: bool = False) -> list[StoredVersion]:
        """Records whose lookup key ``name`` has ``value``: current versions (not deleted), or every version. The
        keys that name many records (a zorgkantoor's, an instelling's) are read on the store's thread."""
        sql = (f"SELECT {', '.join('r.' + c for c in _COLUMNS.split(', '))} FROM record_keys k "
               "JOIN records first ON first.id = k.record "
               "JOIN records r ON r.kind = first.kind AND r.record_id = first.record_id WHERE k.name = ? AND k.value = ?")
        if not history:
            sql += " AND r.current = 1 AND r.deleted = 0"
        rows = await self._rows(sql + " ORDER BY r.kind, r.record_id, r.version", (name, value), few=name in _NAMING_FEW)
        return [r for r in rows if kinds is None or r.kind in kinds]

    async def list_current(self, kind: str, *, limit: int = 100, offset: int = 0) -> list[StoredVersion]:
        rows = await self.store.fetchall(f"{_SELECT} WHERE kind = ? AND current = 1 AND deleted = 0 ORDER BY record_id LIMIT ? OFFSET ?",
                                         (kind, limit, offset))
        return [self._row(r) for r in rows]

    async def page(self, kind: str, *, after: tuple[str, int] = ("", 0), limit: int = 1000,
                   history: bool = False) -> list[StoredVersion]:
        """The next ``limit`` records after ``after`` (record id, version), in id order: current versions that are
        not deleted, or every version with ``history``. Keyset paging: each page costs the same, however deep."""
        if history:
            rows = await self.store.fetchall(
                f"{_SELECT} WHERE kind = ? AND (record_id, version) > (?, ?) ORDER BY record_id, version LIMIT ?",
                (kind, *after, limit))
        else:
            rows = await self.store.fetchall(
                f"{_SELECT} WHERE kind = ? AND current = 1 AND deleted = 0 AND record_id > ? ORDER BY record_id LIMIT ?",
                (kind, after[0], limit))
        return [self._row(r) for r in rows]

    async def count(self) -> int:
        """Records held (current, not deleted): kept as they are written, so it costs nothing at any size."""
        return sum(self._counts.values())

    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    @staticmethod
    def _count_statement(changes: dict[str, int]) -> list[Statement]:
        rows = [(kind, n) for kind, n in changes.items() if n]
        return [(_COUNT, rows, True)] if rows else []

    def _counted(self, changes: dict[str, int]) -> None:
        """After the write that changed them committed."""
        for kind, n in changes.items():
            self._counts[kind] = self._counts.get(kind, 0) + n

    # Writes -----------------------------------------------------------

    def _version(self, record_type: RecordType, record_id: str, version: int, data: dict[str, Any] | None,
                 now: int, *, sign: bool, prepared: Prepared | None = None
                 ) -> tuple[tuple[Any, ...], list[tuple[str, str, str, str]], StoredVersion]:
        """The records row, the lookup keys and the stored version of one new version: signed now (one record
        written by a person or a peer, soon read), or when first read (an import, whose content comes
        ``prepared``)."""
        kind = record_type.kind
        if prepared is not None and data is not None:
            encoded, packed, keys = prepared.encoded, prepared.packed, prepared.keys
            retain = prepared.retain_until
        else:
            encoded = cbor.encode(data) if data is not None else None
            packed = pack(encoded) if encoded is not None else None
            keys = _keys(kind, record_id, data)
            retain = self.retain_until(record_type, data, now)
        signature = None
        if sign:
            signature, signed = self._sign_now(kind, record_id, version, now, data is None, data, encoded)
            stored = StoredVersion(kind, record_id, version, data, data is None, now, lambda: signed, signed)
        else:
            stored = self._unsigned(kind, record_id, version, data, encoded, data is None, now)
        row = (kind, record_id, version, signature, packed, data is None, now, retain, self.cert_hash)
        return row, keys, stored

    def retain_until(self, record_type: RecordType, data: dict[str, Any] | None, now: int) -> str | None:
        """When all versions may go: the end plus the 'ended' years, or for a tombstone now plus 'withdrawn'."""
        years = self.retention.get(record_type.kind, {})
        if data is None:
            withdrawn = years.get("withdrawn", record_type.retention_years)
            return None if withdrawn is None else add_years(date.fromtimestamp(now), withdrawn)
        return record_type.retain_until(data, years.get("ended"))

    def _version_statements(self, record_type: RecordType, record_id: str, version: int, data: dict[str, Any] | None,
                            now: int, *, keyed: dict[str, Any] | None, sign: bool = True,
                            prepared: Prepared | None = None) -> tuple[list[Statement], StoredVersion]:
        """``keyed``: the content whose lookup keys the record has now (its last version with content), which the
        new content's keys replace."""
        row, keys, stored = self._version(record_type, record_id, version, data, now, sign=sign, prepared=prepared)
        statements: list[Statement] = []
        if version > 1:  # a first version has no earlier one to retire, nor keys to replace
            statements.append((_RETIRE, (record_type.kind, record_id), False))
        statements.append((_INSERT_RECORD, row, False))
        if data is not None:  # a tombstone keeps the keys, so history stays findable
            gone = set(_keys(record_type.kind, record_id, keyed)) - set(keys) if keyed is not None else None
            if gone:
                statements.append((_DELETE_KEY, sorted(gone), True))
            statements.append((_INSERT_KEY, keys, True))
        return statements, stored

    async def _keyed(self, current: StoredVersion | None) -> dict[str, Any] | None:
        """The content whose keys a record has: its current one, or for a deleted record the last before that.
        The keys are derived from it, not looked up: an index from record to keys would cost every record
        ~160 bytes on disk."""
        if current is None or not current.deleted:
            return current.data if current is not None else None
        return await self._last_content(current.kind, current.record_id)

    async def _last_content(self, kind: str, record_id: str) -> dict[str, Any] | None:
        row = await self.store.fetchone(
            "SELECT data FROM records WHERE kind = ? AND record_id = ? AND data IS NOT NULL ORDER BY version DESC LIMIT 1",
            (kind, record_id))
        return self._decoded(row[0])[1] if row is not None else None

    async def _commit(self, statements: list[Statement], kind: str, record_id: str, old: dict[str, Any] | None,
                      new: dict[str, Any] | None, now: int) -> None:
        """One transaction: the new version, its audit entry and the notifications it causes."""
        if self.notifier is not None:
            statements.extend(await self.notifier(kind, [(record_id, old, new)], now))
        await self._write(statements, {kind: (new is not None) - (old is not None)})
        if self.on_written is not None:
            self.on_written()

    async def _write(self, statements: list[Statement], counts: dict[str, int] | None = None) -> None:
        """Write, with the certificate the new signatures are made under when it is not stored yet, and the
        change in the number of records held."""
        counts = counts or {}
        await self.store.write(self._certificate_statements() + statements + self._count_statement(counts))
        self._certificate_stored = True
        self._counted(counts)

    async def put(self, kind: str, data: Any, *, actor: Actor, now: int, trace_id: str | None = None,
                  request: bytes | None = None) -> tuple[StoredVersion, bool]:
        """Store a new version; returns it and whether anything changed (an identical put is a no-op)."""
        record_type = self._holds(kind)
        data = checked_record(kind, data)
        record_id = record_type.record_id(data)
        check = self.checks.get(kind)
        if check is not None:
            await check(data)
        async with self._lock:
            current = await self.current(kind, record_id)
            if current is not None and not current.deleted and current.data == data:
                return current, False
            version = current.version + 1 if current else 1
            statements, stored = self._version_statements(record_type, record_id, version, data, now,
                                                          keyed=await self._keyed(current))
            statements.append(self.audit.entry(
                now=now, event=f"record.{'update' if current else 'create'}", action="U" if current else "C",
                result="ok", actor=actor, subject=record_type.bsn(data), record=f"{kind}/{record_id}",
                trace_id=trace_id, request=request))
            await self._commit(statements, kind, record_id, current.data if current else None, data, now)
            self._current.put((kind, record_id), stored)
        return stored, True

    async def delete(self, kind: str, record_id: str, *, actor: Actor, now: int, trace_id: str | None = None) -> StoredVersion:
        record_type = self._holds(kind)
        async with self._lock:
            current = await self.current(kind, record_id)
            if current is None or current.deleted:
                raise ValidationError(f"{kind}/{record_id} does not exist")
            statements, stored = self._version_statements(record_type, record_id, current.version + 1, None, now, keyed=None)
            statements.append(self.audit.entry(
                now=now, event="record.delete", action="D", result="ok", actor=actor,
                subject=record_type.bsn(current.data or {}), record=f"{kind}/{record_id}", trace_id=trace_id))
            await self._commit(statements, kind, record_id, current.data, None, now)
            self._current.put((kind, record_id), stored)
        return stored

    async def put_many(self, kind: str, batch: Batch, *, actor: Actor, now: int) -> BatchResult:
        """Store a batch (an import): its lines (line, record id to delete or None, record), or the admin API's
        body that holds them. A record equal to the current version makes nothing, a changed one a new version;
        a line that fails is rejected with its reason, the rest is written in one transaction, with its audit
        entries and the notifications it causes. A body that is not a batch raises ValidationError."""
        record_type = self._holds(kind)
        self.importing_until = time.monotonic() + IMPORT_QUIET
        result = BatchResult()
        prepared, result.rejected = await self.preparer.prepare(kind, batch, self.retention.get(kind, {}).get("ended"))
        prepared = await self._passing_checks(kind, prepared, result.rejected)
        async with self._lock:
            known = await self._currents(kind, [p.record_id for p in prepared])
            written_content: dict[str, dict[str, Any]] = {}
            writes: list[Statement] = []
            entries: list[Statement] = []
            changes: list[Change] = []
            for ready in prepared:
                record_id, data = ready.record_id, ready.data
                current = known.get(record_id)
                old = current.data if current is not None and not current.deleted else None
                if old == data:
                    result.unchanged += 1  # the same content, or a delete of what is not there
                    continue
                version = current.version + 1 if current else 1
                # Content this batch wrote is not in the database yet: its keys are the ones to replace.
                keyed = (written_content[record_id] if record_id in written_content
                         else old if current is None or not current.deleted else await self._keyed(current))
                version_statements, written = self._version_statements(record_type, record_id, version, data, now,
                                                                       keyed=keyed, sign=False, prepared=ready)
                if data is not None:
                    written_content[record_id] = data
                writes += version_statements
                action = "D" if data is None else "U" if old is not None else "C"
                entries.append(self.audit.entry(
                    now=now, event="record.import", action=action, result="ok", actor=actor,
                    subject=record_type.bsn(data or old or {}), record=f"{kind}/{record_id}"))
                changes.append((record_id, old, data))
                known[record_id] = written
                result.count(action)
            if len({record_id for record_id, _, _ in changes}) == len(changes):
                # Each record changes once: its statements touch no other's, so each kind of statement can run
                # as one (Store: a run of one SQL text is one call). A record changed twice keeps their order.
                writes.sort(key=lambda statement: _WRITE_ORDER[statement[0]])
            statements = writes + entries
            if changes and self.notifier is not None:
                statements += await self.notifier(kind, changes, now)
            if statements:
                await self._write(statements, {kind: result.created - result.deleted})
            for record_id, version_now in known.items():
                self._current.put((kind, record_id), version_now)
        if statements and self.on_written is not None:
            self.on_written()
        return result

    async def _passing_checks(self, kind: str, prepared: list[Prepared], rejected: list[tuple[int, str]]) -> list[Prepared]:
        """The prepared lines that pass this node's checks beyond the schema (self.checks); the others go to
        ``rejected``, which is kept in line order."""
        check = self.checks.get(kind)
        if check is None:
            return prepared
        passing = []
        for ready in prepared:
            try:
                if ready.data is not None:
                    await check(ready.data)
                passing.append(ready)
            except ValidationError as exc:
                rejected.append((ready.line, str(exc)))
        rejected.sort()
        return passing

    async def _currents(self, kind: str, record_ids: list[str]) -> dict[str, StoredVersion | None]:
        """Current versions of many records, in a few queries."""
        out: dict[str, StoredVersion | None] = {}
        wanted = sorted(set(record_ids))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            rows = await self.store.fetchall(
                f"{_SELECT} WHERE kind = ? AND current = 1 AND record_id IN ({', '.join('?' * len(chunk))})", (kind, *chunk))
            found = {row[1]: self._row(row) for row in rows}
            out.update({record_id: found.get(record_id) for record_id in chunk})
        return out

    async def load_many(self, kind: str, records: list[dict[str, Any]], *, actor: Actor, now: int) -> int:
        """Bulk load new records (first versions) in one transaction, an audit entry per record: each client
        sees in his access log that his record was made."""
        record_type = self._holds(kind)
        self.importing_until = time.monotonic() + IMPORT_QUIET
        rows: list[tuple[Any, ...]] = []
        keys: list[tuple[str, str, str, str]] = []
        changes: list[Change] = []
        entries: list[Statement] = []
        stored: list[StoredVersion] = []
        for n, data in enumerate(records):
            if n % 16 == 15:
                await asyncio.sleep(0)  # validating 16 records takes ~0.5 ms: let requests through
            data = checked_record(kind, data)
            record_id = record_type.record_id(data)
            if kind in self.checks:
                await self.checks[kind](data)
            row, record_keys, version = self._version(record_type, record_id, 1, data, now, sign=False)
            rows.append(row)
            stored.append(version)
            keys.extend(record_keys)
            entries.append(self.audit.entry(now=now, event="record.bulk-load", action="C", result="ok", actor=actor,
                                            subject=record_type.bsn(data), record=f"{kind}/{record_id}"))
            changes.append((record_id, None, data))
        notifications = await self.notifier(kind, changes, now) if self.notifier is not None else []
        async with self._lock:
            await self._write([
                (_INSERT_RECORD, rows, True),
                (_INSERT_KEY, keys, True),
                *entries,
                *notifications,
            ], {kind: len(rows)})
            # What was just written is what its notifications' receivers ask for next, as put_many keeps it too.
            for version in stored:
                self._current.put((kind, version.record_id), version)
        if self.on_written is not None:
            self.on_written()
        return len(records)

    async def purge(self, *, today: date, actor: Actor, now: int, dry_run: bool = False,
                    given_on: date | None = None) -> list[str]:
        """Remove every version of records whose retention period has passed; returns their paths (kind/id).

        The audit log names each purged record by its path, never its content; a party that still holds
        evidence of one hears nothing beyond what the protocol says anyway: ``not-found`` when it asks.
        """
        rows = await self.store.fetchall(
            "SELECT kind, record_id, deleted FROM records WHERE current = 1 AND retain_until IS NOT NULL AND retain_until < ? "
            "ORDER BY kind, record_id", (today.isoformat(),))
        paths = [f"{kind}/{record_id}" for kind, record_id, _ in rows]
        if dry_run or not rows:
            return paths
        # A date someone gave (``given_on`` the day he gave it) is named beside what it removed.
        result = "retention ended" + (f" by {today.isoformat()}, a date given on {given_on.isoformat()}" if given_on else "")
        # A slice at a time, each its own commit: the first run after retention was set (or after a long stop) may
        # purge a large part of a register, and one transaction would hold every other write until it ends.
        for start in range(0, len(rows), PURGE_SLICE):
            statements: list[Statement] = []
            held: dict[str, int] = {}
            for kind, record_id, deleted in rows[start:start + PURGE_SLICE]:
                if not deleted:
                    held[kind] = held.get(kind, 0) - 1
                # The keys first: they find their record through its first version.
                statements.append((_DELETE_KEY, _keys(kind, record_id, await self._last_content(kind, record_id)), True))
                statements.append(("DELETE FROM records WHERE kind = ? AND record_id = ?", (kind, record_id), False))
                statements.append(self.audit.entry(now=now, event="record.purge", action="D", result=result,
                                                   actor=actor, record=f"{kind}/{record_id}"))
            async with self._lock:
                await self._write(statements, held)
                self._current.clear()
                self._unsigned_after = 0  # rowids of purged versions may be given out again
                self._purges += 1
        return paths

__all__ = ["Registers", "StoredVersion", "BatchResult", "values_at"]
