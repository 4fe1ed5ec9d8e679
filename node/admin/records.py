"""The admin API over the organisation's own registers: list, search, read (with who read it), write, delete."""

from __future__ import annotations

import re

from aiohttp import web

from node.admin.access import PERMISSIONS, user_of
from node.admin.parts import RouteGroup, error, read_json
from node.errors import ValidationError
from node.policy.matrix import load_uitleg
from node.store import RECORD_TYPES, StoredVersion
from node.store.records import json_schema
from protocol.messages import UUID4

_BSN = re.compile(r"^[0-9]{9}$")


class RecordRoutes(RouteGroup):
    ROUTES = (
        ("GET", "/admin/v1/node", "view", "info"),
        ("GET", "/admin/v1/schema/{kind}", "view", "schema"),
        ("GET", "/admin/v1/uitleg", "view", "uitleg"),
        ("GET", "/admin/v1/search", "read", "search"),
        ("GET", "/admin/v1/records/{kind}", "read", "list_records"),
        ("POST", "/admin/v1/records/{kind}", "write", "put_record"),
        ("POST", "/admin/v1/records/{kind}/bulk", "write", "bulk_load"),
        ("GET", "/admin/v1/records/{kind}/{id}", "read", "get_record"),
        ("GET", "/admin/v1/records/{kind}/{id}/readers", "read", "readers"),
        ("DELETE", "/admin/v1/records/{kind}/{id}", "write", "delete_record"),
    )

    async def info(self, request: web.Request) -> web.Response:
        user = user_of(request)
        held = [kind for kind, t in RECORD_TYPES.items() if t.source_role == self.p.registers.role]
        return web.json_response({**self.p.describe(), "records": await self.p.registers.count(), "kinds": held,
                                  "user": {"name": user.name, "role": user.role,
                                           "may": [p for p, roles in PERMISSIONS.items() if user.role in roles]}})

    async def schema(self, request: web.Request) -> web.Response:
        """The JSON Schema of a record kind: the web interface builds its forms from it."""
        return web.json_response(json_schema(request.match_info["kind"]))

    async def uitleg(self, request: web.Request) -> web.Response:
        """What each rule code means, in plain Dutch."""
        return web.json_response(load_uitleg())

    async def list_records(self, request: web.Request) -> web.Response:
        limit = min(int(request.query.get("limit", "100")), 1000)
        offset = int(request.query.get("offset", "0"))
        found = await self.p.registers.list_current(request.match_info["kind"], limit=limit, offset=offset)
        await self.audit_reads(request, found, "admin.list")
        return web.json_response({"records": [r.summary() for r in found]})

    async def search(self, request: web.Request) -> web.Response:
        """The own records of a client (a BSN) or with an id: every kind this node holds, current versions."""
        query = request.query.get("q", "").strip()
        found: list[StoredVersion] = []
        if _BSN.fullmatch(query):
            found = await self.p.registers.find("bsn", query)
        elif UUID4.fullmatch(query.lower()):
            query = query.lower()
            for kind, record_type in RECORD_TYPES.items():
                if record_type.source_role in ("*", self.p.registers.role):
                    current = await self.p.registers.current(kind, query)
                    found += [current] if current is not None else []
            found += await self.p.registers.find("bemiddelingspecificatieID", query)
        else:
            raise ValidationError("search for a BSN (9 digits) or a record id (a UUID)")
        unique = {v.path: v for v in found}
        await self.audit_reads(request, list(unique.values()), "admin.search")
        return web.json_response({"records": [v.summary() for v in unique.values()]})

    async def put_record(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        stored, changed = await self.p.registers.put(request.match_info["kind"], data, actor=self.actor(request),
                                                     now=self.now())
        return web.json_response({"kind": stored.kind, "id": stored.record_id, "version": stored.version, "changed": changed},
                                 status=201 if changed and stored.version == 1 else 200)

    async def bulk_load(self, request: web.Request) -> web.Response:
        """New records in one transaction (first versions only), with their notifications."""
        records = await read_json(request)
        if not isinstance(records, list):
            raise ValidationError("a bulk load is a JSON list of records")
        loaded = await self.p.registers.load_many(request.match_info["kind"], records, actor=self.actor(request),
                                                  now=self.now())
        return web.json_response({"loaded": loaded}, status=201)

    async def get_record(self, request: web.Request) -> web.Response:
        kind, record_id = request.match_info["kind"], request.match_info["id"]
        if request.query.get("history") in ("1", "true"):
            versions = await self.p.registers.history(kind, record_id)
        else:
            current = await self.p.registers.current(kind, record_id)
            versions = [current] if current else []
        if not versions:
            return error(404, "not-found", f"no {kind} with that id")
        await self.audit_reads(request, versions[-1:], "admin.read")
        return web.json_response({"versions": [v.summary() for v in versions]})

    async def readers(self, request: web.Request) -> web.Response:
        """Who read or changed this record, here and through peer queries, newest first (no subject shown)."""
        path = f"{request.match_info['kind']}/{request.match_info['id']}"
        entries = await self.p.audit.entries(record=path, limit=min(int(request.query.get("limit", "200")), 1000),
                                             newest_first=True)
        return web.json_response({"entries": [e.public(with_subject=False) for e in entries]})

    async def delete_record(self, request: web.Request) -> web.Response:
        stored = await self.p.registers.delete(request.match_info["kind"], request.match_info["id"],
                                               actor=self.actor(request), now=self.now())
        return web.json_response({"kind": stored.kind, "id": stored.record_id, "version": stored.version, "deleted": True})


__all__ = ["RecordRoutes"]
