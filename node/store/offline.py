"""Reading and verifying a node's audit log straight from its store (the node may or may not run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from keys import Identity
from node.store.audit import AuditLog
from node.store.database import Store


class Home(Protocol):
    """A node home (node.home.NodeHome): where the store is, and the key that signs the audit head."""

    @property
    def database_path(self) -> Path: ...

    def identity(self) -> Identity: ...


async def read_audit(home: Home, *, verify: bool, limit: int, full: bool = True) -> tuple[bool, int, str, list[dict[str, Any]]]:
    async with Store(home.database_path) as store:
        audit = AuditLog(store, home.identity())
        if verify:
            check = await audit.check(full=full)  # read only: a stopped node's home is not written to
            intact, count, detail = check.intact, check.entries, check.detail
            return intact, count, detail, []
        entries = await audit.entries(limit=limit)
        # The text view leaves the subject (a BSN) out.
        return True, len(entries), "", [e.public(with_subject=False) for e in entries]


async def signed_request(home: Home, seq: int) -> tuple[bytes | None, bytes | None]:
    """The signed request audit entry ``seq`` names: (its bytes while the node keeps them, its SHA-256)."""
    async with Store(home.database_path) as store:
        return await AuditLog(store, home.identity()).signed_request(seq)


__all__ = ["read_audit", "signed_request"]
