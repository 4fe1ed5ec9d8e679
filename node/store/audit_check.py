"""Checking the audit chain: on a read connection of its own, in one read transaction, from a signed checkpoint.

A busy node commits entries and its signed head together; reading them in
one transaction (a WAL snapshot) means a check never sees entries without
their head or a head without its entries, so it never reports a broken
chain that is not. A checkpoint is the node's signature over an entry
number and its hash after a check that passed; a later check verifies the
checkpoint (signature, and that entry still has that hash) and walks only
the entries after it, so its cost follows the new entries, not the history.
``full=True`` walks everything.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from keys import KeysError, Verifier, cbor
from protocol.witness import head_bytes

GENESIS: Final = b"\x00" * 32
COLUMNS: Final = ("seq", "at", "event", "action", "result", "actor_did", "actor_role", "actor_org",
                  "subject", "record", "trace_id", "rule", "request", "hash", "actor_user", "request_sha256")
CHECKPOINT_LABEL: Final = "iwlz-audit-checkpoint"
# An entry's row with its request's bytes where they are still kept (the first entry of a request in its commit).
ROWS: Final = (f"SELECT {', '.join('r.request' if c == 'request' else 'a.' + c for c in COLUMNS)} "
               "FROM audit a LEFT JOIN audit_requests r ON r.seq = a.seq")


def entry_hash(prev_hash: bytes, fields: list[Any]) -> bytes:
    return hashlib.sha256(prev_hash + cbor.encode(fields)).digest()


def entry_fields(row: tuple[Any, ...]) -> list[Any]:
    """The hashed fields of a stored row (the request by its SHA-256; the person, when one acted, last, so that
    entries from before users existed keep their hashes)."""
    seq, at, event, action, result, did, role, org, subject, record, trace_id, rule, request = row[:13]
    # An entry keeps its request's SHA-256 (request_sha256); the first of a commit's entries for one request has its
    # bytes too, for audit_request_days, and they must be what that hash says (entries from before schema 16 had
    # only the bytes until they went).
    kept_hash = bytes(row[15]) if len(row) > 15 and row[15] is not None else None
    digest = hashlib.sha256(request).digest() if request else kept_hash
    if kept_hash is not None and digest != kept_hash:
        digest = b""  # bytes that are not the request the entry names: the entry does not verify
    fields = [seq, at, event, action, result, did, role, org, subject, record, trace_id, rule, digest]
    user = row[14] if len(row) > 14 else None
    return fields + [user] if user is not None else fields


def checkpoint_bytes(seq: int, digest: bytes) -> bytes:
    return cbor.encode([CHECKPOINT_LABEL, seq, digest])


@dataclass(frozen=True, slots=True)
class ChainCheck:
    intact: bool
    entries: int  # the number of the last entry (the chain's length)
    checked: int  # entries hashed in this check
    detail: str
    head: tuple[int, bytes] | None  # (seq, hash) the check ended at, when intact


def _signed(verifier: Verifier, message: bytes, signature: bytes) -> bool:
    try:
        verifier.verify(message, signature)
    except KeysError:
        return False
    return True


def check_chain(path: Path, verifier: Verifier, *, full: bool = False) -> ChainCheck:
    """Check the chain in the SQLite file at ``path`` against its signed head (runs in a worker thread)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        conn.execute("BEGIN")
        return _check(conn, verifier, full)
    finally:
        conn.rollback()
        conn.close()


def _start(conn: sqlite3.Connection, verifier: Verifier, full: bool) -> tuple[int, bytes]:
    """Where to start walking: after the newest checkpoint that still holds, or at the beginning."""
    if full:
        return 0, GENESIS
    for seq, digest, signature in conn.execute("SELECT seq, hash, signature FROM audit_checkpoint ORDER BY seq DESC LIMIT 3"):
        row = conn.execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone()
        if row is not None and bytes(row[0]) == bytes(digest) and _signed(verifier, checkpoint_bytes(seq, bytes(digest)),
                                                                          bytes(signature)):
            return int(seq), bytes(digest)
    return 0, GENESIS


def _check(conn: sqlite3.Connection, verifier: Verifier, full: bool) -> ChainCheck:
    start, prev = _start(conn, verifier, full)
    expected, checked = start + 1, 0
    for row in conn.execute(f"{ROWS} WHERE a.seq > ? ORDER BY a.seq", (start,)):
        seq, digest = row[0], bytes(row[13])
        if seq != expected:
            return ChainCheck(False, expected - 1, checked, f"entry {expected} is missing (next is {seq})", None)
        # Hashed over the previous entry's hash as stored: an entry moved, or one after a changed entry, fails here.
        if entry_hash(prev, entry_fields(row)) != digest:
            return ChainCheck(False, seq, checked, f"entry {seq} was changed", None)
        prev, expected, checked = digest, expected + 1, checked + 1
    last = expected - 1
    head = conn.execute("SELECT seq, hash, signature FROM audit_head WHERE id = 1").fetchone()
    if head is None:
        intact = last == 0
        return ChainCheck(intact, last, checked, "chain intact" if intact else "signed chain head is missing", (0, GENESIS) if intact else None)
    seq, head_hash, signature = int(head[0]), bytes(head[1]), bytes(head[2])
    if not _signed(verifier, head_bytes(seq, head_hash), signature):
        return ChainCheck(False, last, checked, "signed chain head does not verify", None)
    if seq != last or head_hash != prev:
        return ChainCheck(False, last, checked, f"chain ends at entry {last} but the signed head names entry {seq}", None)
    since = f" ({checked} new since the checkpoint at entry {start})" if start else ""
    return ChainCheck(True, last, checked, f"chain intact{since}", (last, prev))


__all__ = ["ChainCheck", "check_chain", "checkpoint_bytes", "entry_hash", "entry_fields", "GENESIS", "COLUMNS", "ROWS"]
