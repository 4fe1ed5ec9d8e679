"""Audit chain checks at size: a full walk against the incremental check from a signed checkpoint.

    python -m bench.audit [--entries 1000000] [--new 1000]

Builds a node store with N chained entries (real entry fields and hashes), then times, in one run: a full
check, a check from a checkpoint at entry N with --new entries after it, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from contextlib import closing
from pathlib import Path

from keys import Identity
from node.store import Store
from node.store.audit_check import COLUMNS, GENESIS, check_chain, checkpoint_bytes, entry_fields, entry_hash
from protocol.witness import head_bytes


async def build(path: Path) -> None:
    async with Store(path):
        pass  # creates the schema


def fill(path: Path, identity: Identity, start: int, count: int, prev: bytes) -> bytes:
    import sqlite3

    with closing(sqlite3.connect(path)) as db, db:
        rows = []
        for seq in range(start, start + count):
            fields = (seq, "2026-11-29T10:00:00.000000Z", "query QIR-0001-ZKi", "R", "allowed", "did:key:z6MkExample",
                      "zorgkantoor", "Zorgkantoor Noord", "106658037", "WlzIndicatie/31835d1d-3933-4ffe-9f57-8985f41fae4a",
                      "0" * 32, "UCIR-0001", None)
            digest = entry_hash(prev, entry_fields(fields))
            rows.append((*fields, digest, None, None))  # no named user (the node acted), the request not kept
            prev = digest
            if len(rows) == 50_000:
                db.executemany(f"INSERT INTO audit ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", rows)
                rows = []
        db.executemany(f"INSERT INTO audit ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", rows)
        last = start + count - 1
        db.execute("INSERT OR REPLACE INTO audit_head (id, seq, hash, signature) VALUES (1, ?, ?, ?)",
                   (last, prev, identity.sign(head_bytes(last, prev))))
    return prev


def checkpoint(path: Path, identity: Identity, seq: int, digest: bytes) -> None:
    import sqlite3

    with closing(sqlite3.connect(path)) as db, db:
        db.execute("INSERT INTO audit_checkpoint (seq, hash, signature) VALUES (?, ?, ?)",
                   (seq, digest, identity.sign(checkpoint_bytes(seq, digest))))


def timed(path: Path, identity: Identity, full: bool) -> tuple[float, int, bool]:
    started = time.perf_counter()
    check = check_chain(path, identity.verifier(), full=full)
    return time.perf_counter() - started, check.checked, check.intact


def measure(entries: int, new: int) -> dict[str, float]:
    """Full and incremental checks of a chain of ``entries`` with ``new`` after the last checkpoint."""
    tmp = Path(tempfile.mkdtemp(prefix="iwlz-audit-"))
    try:
        path, identity = tmp / "node.sqlite3", Identity.generate()
        asyncio.run(build(path))
        started = time.perf_counter()
        digest = fill(path, identity, 1, entries, GENESIS)
        print(f"built {entries:,} chained entries in {time.perf_counter() - started:.1f} s")
        checkpoint(path, identity, entries, digest)
        fill(path, identity, entries + 1, new, digest)
        full, full_checked, ok_full = timed(path, identity, full=True)
        incremental, inc_checked, ok_inc = timed(path, identity, full=False)
        print(f"full check:        {full * 1000:10.1f} ms ({full_checked:,} entries hashed, intact={ok_full})")
        print(f"incremental check: {incremental * 1000:10.1f} ms ({inc_checked:,} entries hashed after the checkpoint, "
              f"intact={ok_inc})")
        print(f"ratio incremental/full: {incremental / full:.5f}")
        assert ok_full and ok_inc
        return {"full_ms": full * 1000, "incremental_ms": incremental * 1000}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=1000)
    args = parser.parse_args(argv)
    measure(args.entries, args.new)


if __name__ == "__main__":
    main()
