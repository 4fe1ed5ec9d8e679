"""The audit log: NEN 7513 fields, hash-chained, with the signed request kept for non-repudiation (for
``audit_request_days``; then by its SHA-256, which the chain hashes either way).

Each entry's hash is SHA-256 over the previous hash and the deterministic CBOR
of its fields (the request by its SHA-256), so changing, removing or
reordering any entry breaks the chain from that point on.
"""

from __future__ import annotations

import hashlib
from functools import partial
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final

from keys import Identity, Member
from node.errors import StorageError
from node.store.audit_check import COLUMNS, GENESIS, ROWS, ChainCheck, check_chain, checkpoint_bytes, entry_fields, entry_hash
from node.store.database import Statement, Store
from node.store.records import bsn_of
from protocol import AuditHead
from protocol.witness import head_bytes

_PENDING: Final = "-- audit entry, numbered at commit --"
_FORGET_SLICE: Final = 1000  # entries per commit when signed requests pass their keeping time
_SAME_COMMIT: Final = 4096  # requests kept in one commit, at most, before an entry of the last of them
ACTIONS: Final = frozenset("CRUDE")
_COLUMNS: Final = COLUMNS


@dataclass(frozen=True, slots=True)
class Actor:
    did: str
    role: str
    organisation: str
    user: str | None = None  # the person, for a named user of the admin API (role: beheerder, medewerker, auditor)

    @classmethod
    def of(cls, member: Member) -> Actor:
        """The actor a verified certificate names."""
        return cls(member.did, member.role, member.organisation)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: str
    event: str
    action: str
    result: str
    actor_did: str
    actor_role: str
    actor_org: str
    subject: str | None
    record: str | None
    trace_id: str | None
    rule: str | None
    request: bytes | None
    hash: bytes
    actor_user: str | None = None
    request_sha256: bytes | None = None  # the request's hash (entries before schema 16: when the bytes are elsewhere)

    def public(self, *, with_subject: bool = True, with_user: bool = True) -> dict[str, Any]:
        """The entry as shown to a reader (the request bytes by hash only); a client is shown the role of the person
        who acted, not the name."""
        out = {k: getattr(self, k) for k in _COLUMNS if k not in ("request", "hash", "request_sha256")}
        # Every entry since schema 16 holds its request's hash: the bytes are hashed only for one moved by it.
        out["request_sha256"] = (self.request_sha256.hex() if self.request_sha256
                                 else hashlib.sha256(self.request).hexdigest() if self.request else None)
        out["hash"] = self.hash.hex()
        if not with_subject:
            out.pop("subject")
        if not with_user:
            out.pop("actor_user")
        return out


def _fields(seq: int, at: str, event: str, action: str, result: str, actor: Actor, subject: str | None,
            record: str | None, trace_id: str | None, rule: str | None, request_sha256: bytes | None) -> list[Any]:
    """The hashed fields of a new entry; the chain hashes the request by its SHA-256, computed once."""
    return entry_fields((seq, at, event, action, result, actor.did, actor.role, actor.organisation, subject, record,
                         trace_id, rule, None, None, actor.user, request_sha256))


def portable(statement: Statement) -> list[Any]:
    """A statement as plain data (CBOR), for a worker process to hand to the process that owns writes; an audit
    entry stays unnumbered until that process commits it into its chain."""
    sql, params, many = statement
    if sql is _PENDING:
        fields: Any = params
        at, event, action, result, actor, subject, record, trace_id, rule, request = fields
        return [None, [at, event, action, result, [actor.did, actor.role, actor.organisation, actor.user], subject,
                       record, trace_id, rule, request], False]
    rows = [list(row) for row in params] if many else list(params)  # type: ignore[union-attr]
    return [sql, rows, bool(many)]


def from_portable(item: Any) -> Statement:
    """The statement ``portable`` made; StorageError if the item is not one."""
    try:
        sql, params, many = item
        if sql is None:
            at, event, action, result, actor, subject, record, trace_id, rule, request = params
            if not isinstance(event, str) or action not in ACTIONS or not isinstance(request, (bytes, type(None))):
                raise ValueError("not an audit entry")
            fields = (at, event, action, result, Actor(*actor), subject, record, trace_id, rule, request)
            return (_PENDING, fields, False)
        if not isinstance(sql, str) or not isinstance(params, list):
            raise ValueError("not a statement")
        return (sql, [tuple(row) for row in params] if many else tuple(params), bool(many))
    except (TypeError, ValueError) as exc:
        raise StorageError("a worker handed over a write that is not one") from exc


_SECOND: list[Any] = [None, ""]


def utc(ts: float) -> str:
    """ISO 8601 UTC with microseconds; the seconds part is formatted once per second."""
    second = int(ts)
    if _SECOND[0] != second:
        _SECOND[:] = [second, datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")]
    return f"{_SECOND[1]}.{int((ts - second) * 1_000_000):06d}Z"


_INSERT: Final = f"INSERT INTO audit ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


class AuditLog:
    """Appends chained entries; the head (last seq and hash) is signed by the node,
    so that cutting entries off the end is detected too."""

    def __init__(self, store: Store, identity: Identity) -> None:
        self.store = store
        self.identity = identity
        self._seq = 0
        self._head = GENESIS
        self._head_signature: tuple[int, bytes] = (0, b"")
        self._before = (0, GENESIS)
        store.set_journal(self)

    def switch_identity(self, identity: Identity) -> None:
        """Sign the chain head with this key from the next commit on."""
        self.identity = identity
        self._head_signature = (0, b"")

    async def load(self) -> None:
        """Continue the chain where it ends, after checking it ends where its signed head says: a node does not
        extend a chain that was cut or whose last entries were changed."""
        row = await self.store.fetchone("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        head = await self.store.fetchone("SELECT seq, hash, signature FROM audit_head WHERE id = 1")
        last = (int(row[0]), bytes(row[1])) if row else (0, GENESIS)
        if head is None and row is not None:
            raise StorageError("the audit log has entries but no signed head: it was tampered with; the node will not "
                               "extend it (restore it from a backup, or investigate with iwlz audit --verify)")
        if head is not None:
            seq, digest, signature = int(head[0]), bytes(head[1]), bytes(head[2])
            if (seq, digest) != last:
                where = ("was cut: entries after entry {} are missing".format(last[0]) if seq > last[0]
                         else "does not end where its signed head says")
                raise StorageError(f"the audit chain {where} (the signed head names entry {seq}, the log ends at entry "
                                   f"{last[0]}); the node will not extend it: restore the log from a backup, or "
                                   "investigate with iwlz audit --verify")
            self._head_signature = (seq, signature)
        self._seq, self._head = last

    @property
    def seq(self) -> int:
        """How many entries the chain holds (seq counts from 1, without gaps)."""
        return self._seq

    def head(self) -> AuditHead:
        """The current signed head, as handed to witnesses and to a client with his access log."""
        if self._head_signature[0] != self._seq or not self._head_signature[1]:
            self._head_signature = (self._seq, self.identity.sign(head_bytes(self._seq, self._head)))
        return AuditHead(seq=self._seq, hash=self._head, signature=self._head_signature[1])

    def entry(
        self, *, now: float, event: str, action: str, result: str, actor: Actor, subject: str | None = None,
        record: str | None = None, trace_id: str | None = None, rule: str | None = None, request: bytes | None = None,
    ) -> Statement:
        """A new entry, to hand to Store.write with what caused it.

        Its sequence number and chain hash are given at commit time, in commit order, so an
        entry that never commits (a crash, a failed write) leaves no gap in the chain.
        """
        if action not in ACTIONS:
            raise ValueError(f"audit action must be one of {''.join(sorted(ACTIONS))}")
        fields = (utc(now), event, action, result, actor, subject, record, trace_id, rule, request)
        return (_PENDING, fields, False)

    def shown(self, versions: list[Any], *, actor: Actor, now: float, event: str) -> list[Statement]:
        """Entries for records shown to someone here: one per record about a client (NEN 7513: who saw whose data)."""
        return [self.entry(now=now, event=event, action="R", result="shown", actor=actor, subject=bsn_of(v.data),
                           record=v.path) for v in versions if v.data is not None and bsn_of(v.data)]

    def prepare(self, statements: list[Statement]) -> list[Statement]:
        """Store.Journal: turn pending entries into chained rows, and add the signed head."""
        self._before = (self._seq, self._head)
        out: list[Statement] = []
        kept: set[bytes] = set()  # requests whose bytes an entry of this commit holds already
        requests: list[tuple[int, bytes]] = []
        for statement in statements:
            if statement[0] is not _PENDING:
                out.append(statement)
                continue
            fields: Any = statement[1]
            at, event, action, result, actor, subject, record, trace_id, rule, request = fields
            request_sha256 = hashlib.sha256(request).digest() if request else None
            self._seq += 1
            # A query that shows ten records makes ten entries of one signed request: its bytes once.
            if request_sha256 is not None and request_sha256 not in kept:
                kept.add(request_sha256)
                requests.append((self._seq, request))
            digest = entry_hash(self._head, _fields(self._seq, at, event, action, result, actor, subject, record,
                                                    trace_id, rule, request_sha256))
            row = (self._seq, at, event, action, result, actor.did, actor.role, actor.organisation, subject, record,
                   trace_id, rule, None, digest, actor.user, request_sha256)
            self._head = digest
            out.append((_INSERT, row, False))
        if requests:
            out.append(("INSERT INTO audit_requests (seq, request) VALUES (?, ?)", requests, True))
        out.extend(self._head_statements())
        return out

    def rolled_back(self) -> None:
        self._seq, self._head = self._before

    def _head_statements(self) -> list[Statement]:
        """The signed chain head, written with every group commit; signed once per new head."""
        if self._seq == 0:
            return []
        if self._head_signature[0] != self._seq:
            self._head_signature = (self._seq, self.identity.sign(head_bytes(self._seq, self._head)))
        return [("INSERT OR REPLACE INTO audit_head (id, seq, hash, signature) VALUES (1, ?, ?, ?)",
                 (self._seq, self._head, self._head_signature[1]), False)]

    async def entries(self, *, subject: str | None = None, record: str | None = None, since_seq: int = 0,
                      since_at: str | None = None, limit: int = 1000, newest_first: bool = False) -> list[AuditEntry]:
        """Entries that pass every filter, then at most ``limit`` of them (the newest, when ``newest_first``)."""
        where, params = "a.seq > ?", [since_seq]
        if subject is not None:
            where += " AND a.subject = ?"
            params.append(subject)  # type: ignore[arg-type]
        if record is not None:
            where += " AND a.record = ?"
            params.append(record)  # type: ignore[arg-type]
        if since_at is not None:
            where += " AND a.at >= ?"  # ISO 8601 UTC text of one format: text order is time order
            params.append(since_at)  # type: ignore[arg-type]
        order = "DESC" if newest_first else ""
        rows = await self.store.fetchall(f"{ROWS} WHERE {where} ORDER BY a.seq {order} LIMIT ?", (*params, limit))
        return [AuditEntry(*row) for row in rows]

    async def signed_request(self, seq: int) -> tuple[bytes | None, bytes | None]:
        """The signed request entry ``seq`` names: (its bytes while they are kept, its SHA-256); (None, None) for an
        entry that names none."""
        row = await self.store.fetchone("SELECT a.request_sha256, r.request FROM audit a "
                                        "LEFT JOIN audit_requests r ON r.seq = a.seq WHERE a.seq = ?", (seq,))
        if row is None or row == (None, None):
            return None, None
        digest, request = (bytes(row[0]) if row[0] is not None else None), row[1]
        if request is not None:
            return bytes(request), hashlib.sha256(request).digest()
        # An earlier entry of the same commit holds the bytes: the commit's entries are numbered together.
        for (kept,) in await self.store.fetchall("SELECT request FROM audit_requests WHERE seq < ? ORDER BY seq DESC "
                                                 "LIMIT ?", (seq, _SAME_COMMIT)):
            if hashlib.sha256(kept).digest() == digest:
                return bytes(kept), digest
        return None, digest

    async def forget_requests(self, before: float, *, dry_run: bool = False) -> int:
        """The signed requests of entries made before ``before`` go; their entries keep each one's SHA-256, which the
        chain hashes either way. Returns how many went (or would go).

        A slice per commit, so that other writes get through; entries are in time order, so the last one made
        before ``before`` is found by halving, and everything up to it goes.
        """
        last = await self._last_before(utc(before))
        if dry_run:
            row = await self.store.fetchone("SELECT count(*) FROM audit_requests WHERE seq <= ?", (last,))
            return int(row[0]) if row else 0
        forgotten = 0
        while True:
            # Entries moved here by schema 16 hold no hash of their own yet: they are given it as their bytes go.
            rows = await self.store.fetchall(
                "SELECT r.seq, CASE WHEN a.request_sha256 IS NULL THEN r.request END FROM audit_requests r "
                "JOIN audit a ON a.seq = r.seq WHERE r.seq <= ? ORDER BY r.seq LIMIT ?", (last, _FORGET_SLICE))
            if not rows:
                return forgotten
            hashed = [(hashlib.sha256(request).digest(), seq) for seq, request in rows if request is not None]
            await self.store.write([("UPDATE audit SET request_sha256 = ? WHERE seq = ?", hashed, True),
                                    ("DELETE FROM audit_requests WHERE seq <= ?", (rows[-1][0],), False)])
            forgotten += len(rows)
            if len(rows) < _FORGET_SLICE:
                return forgotten

    async def _last_before(self, at: str) -> int:
        """The number of the last entry made before ``at`` (0: none), halving between the first entry and the last."""
        low, high = 0, self._seq  # every entry up to low was made before at; every one after high was not
        while low < high:
            middle = (low + high + 1) // 2
            row = await self.store.fetchone("SELECT at FROM audit WHERE seq = ?", (middle,))
            if row is not None and row[0] < at:
                low = middle
            else:
                high = middle - 1
        return low

    async def verify(self, *, full: bool = False) -> tuple[bool, int, str]:
        """Check the chain against its signed head: (intact, entries, what is wrong where).

        From the newest signed checkpoint on, unless ``full``; a check that passes leaves a new checkpoint.
        """
        check = await self.check(full=full)
        if check.intact and check.head is not None and check.checked:
            await self._checkpoint(*check.head)
        return check.intact, check.entries, check.detail

    async def check(self, *, full: bool = False) -> ChainCheck:
        return await self.store.run_aside(partial(check_chain, self.store.path, self.identity.verifier(), full=full))

    async def _checkpoint(self, seq: int, digest: bytes) -> None:
        signature = self.identity.sign(checkpoint_bytes(seq, digest))
        await self.store.write([
            ("INSERT OR REPLACE INTO audit_checkpoint (seq, hash, signature) VALUES (?, ?, ?)", (seq, digest, signature), False),
            ("DELETE FROM audit_checkpoint WHERE seq < (SELECT min(seq) FROM "
             "(SELECT seq FROM audit_checkpoint ORDER BY seq DESC LIMIT 3))", (), False),
        ])


__all__ = ["AuditLog", "AuditEntry", "Actor", "utc", "portable", "from_portable"]
