"""Import and export through the admin API: records in batches in, a register streamed out (JSON Lines or CSV).

Import takes batches of at most a few thousand lines (``iwlz import`` cuts a
file of any size into them and keeps two with the node, never two naming the
same record): each is one transaction, idempotent per record (the same
content makes no new version), with the lines that fail named. A large
batch's body is read and prepared off the node's process
(node/store/preparing.py). Export streams a register page by page, in
id order, so neither side ever holds more than a page.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from node.admin.parts import RouteGroup
from node.errors import ValidationError
from node.store import RECORD_TYPES, Registers, StoredVersion
from node.store.tabular import columns, flatten

PAGE = 1000
FORMATS = ("jsonl", "csv")


def version_line(version: StoredVersion) -> dict[str, Any]:
    """One version of a record in a history export: what it said, and the signed version itself (evidence)."""
    return {"id": version.record_id, "version": version.version, "deleted": version.deleted, "at": version.created_at,
            "record": version.data, "signed": base64.b64encode(version.signed).decode()}


async def export_chunks(registers: Registers, kind: str, *, fmt: str, history: bool,
                        seen: Callable[[list[StoredVersion]], Awaitable[None]]) -> AsyncIterator[bytes]:
    """A register as bytes, page by page; ``seen`` is told of each page (to audit who exported whose records)."""
    if kind not in RECORD_TYPES or RECORD_TYPES[kind].source_role not in ("*", registers.role):
        raise ValidationError(f"this node holds no {kind} register")
    if fmt not in FORMATS:
        raise ValidationError(f"format is one of {', '.join(FORMATS)}")
    if fmt == "csv" and history:
        raise ValidationError("a history export is JSON Lines (each version with its signature)")
    header: list[str] = await _csv_columns(registers, kind) if fmt == "csv" else []
    if header:
        yield _csv_rows([dict(zip(header, header))], header)
    after = ("", 0)
    while page := await registers.page(kind, after=after, limit=PAGE, history=history):
        await seen(page)
        if fmt == "csv":
            yield _csv_rows([flatten(v.data or {}) for v in page], header)
        else:
            lines = (version_line(v) if history else v.data for v in page)
            yield "".join(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n" for line in lines).encode()
        after = (page[-1].record_id, page[-1].version)


async def _csv_columns(registers: Registers, kind: str) -> list[str]:
    """Every column some record fills (a first pass over the register)."""
    names: set[str] = set()
    after = ("", 0)
    while page := await registers.page(kind, after=after, limit=PAGE):
        for version in page:
            names.update(flatten(version.data or {}))
        after = (page[-1].record_id, page[-1].version)
    return columns(names, kind)


def _csv_rows(rows: list[dict[str, str]], header: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writerows(rows)
    return out.getvalue().encode()


class TransferRoutes(RouteGroup):
    ROUTES = (
        ("POST", "/admin/v1/import/{kind}", "write", "import_batch"),
        ("GET", "/admin/v1/export/{kind}", "read", "export"),
    )

    async def import_batch(self, request: web.Request) -> web.Response:
        # The body as it came: a large one is read (as JSON) where the batch is prepared, off this process
        result = await self.p.registers.put_many(request.match_info["kind"], await request.read(),
                                                 actor=self.actor(request), now=self.now())
        return web.json_response({"created": result.created, "updated": result.updated, "deleted": result.deleted,
                                  "unchanged": result.unchanged,
                                  "rejected": [{"line": line, "reason": reason} for line, reason in result.rejected]})

    async def export(self, request: web.Request) -> web.StreamResponse:
        fmt = request.query.get("format", "jsonl")
        chunks = export_chunks(self.p.registers, request.match_info["kind"], fmt=fmt,
                               history=request.query.get("history") in ("1", "true"),
                               seen=lambda page: self.audit_reads(request, page, "admin.export"))
        first = await anext(chunks, b"")  # errors in the request are answered before the stream starts
        response = web.StreamResponse(headers={
            "Content-Type": "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson; charset=utf-8"})
        await response.prepare(request)
        await response.write(first)
        async for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
        return response


__all__ = ["TransferRoutes", "export_chunks", "version_line"]
