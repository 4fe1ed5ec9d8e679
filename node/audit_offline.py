"""Reading and verifying a node's audit log straight from its store (the node may or may not run)."""

from __future__ import annotations

from typing import Any

from node.audit import AuditLog
from node.home import NodeHome
from node.store import Store


async def read_audit(home: NodeHome, *, verify: bool, limit: int) -> tuple[bool, int, str, list[dict[str, Any]]]:
    home.require()
    async with Store(home.database_path) as store:
        audit = AuditLog(store, home.identity())
        if verify:
            intact, count, detail = await audit.verify()
            return intact, count, detail, []
        entries = await audit.entries(limit=limit)
        # The text view leaves the subject (a BSN) out.
        return True, len(entries), "", [e.public(with_subject=False) for e in entries]
