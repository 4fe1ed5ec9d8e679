"""The admin API for running the node: the audit log and its checks, retention, named users."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web

from node.admin.parts import RouteGroup, read_json


class OperationRoutes(RouteGroup):
    ROUTES = (
        ("GET", "/admin/v1/audit", "audit", "audit"),
        ("GET", "/admin/v1/audit/verify", "view", "audit_verify"),
        ("POST", "/admin/v1/purge", "operate", "purge"),
        ("GET", "/admin/v1/users", "operate", "users"),
        ("POST", "/admin/v1/users", "operate", "add_user"),
        ("POST", "/admin/v1/users/{name}/revoke", "operate", "revoke_user"),
    )

    async def audit(self, request: web.Request) -> web.Response:
        entries = await self.p.audit.entries(subject=request.query.get("subject"), since_seq=int(request.query.get("since", "0")),
                                             limit=min(int(request.query.get("limit", "1000")), 10_000),
                                             newest_first=request.query.get("newest") in ("1", "true"))
        return web.json_response({"entries": [e.public() for e in entries]})

    async def audit_verify(self, request: web.Request) -> web.Response:
        """The chain against its signed head (from the last checkpoint, or ?full=1), and ?witnesses=1 against the
        heads the witnesses hold."""
        intact, count, detail = await self.p.audit.verify(full=request.query.get("full") in ("1", "true"))
        result: dict[str, Any] = {"intact": intact, "entries": count, "detail": detail}
        if request.query.get("witnesses") in ("1", "true"):
            witnessed, said = await self.p.check_witnesses()
            result |= {"intact": intact and witnessed, "witnesses": said}
        return web.json_response(result)

    async def purge(self, request: web.Request) -> web.Response:
        body = await read_json(request) if request.can_read_body else {}
        today = date.fromisoformat(body["today"]) if body.get("today") else None
        return web.json_response(await self.p.purge(today, bool(body.get("dry_run")), self.actor(request)))

    async def users(self, request: web.Request) -> web.Response:
        return web.json_response({"users": await self.p.users.list()})

    async def add_user(self, request: web.Request) -> web.Response:
        """A person with a role and a token of his own; the token is in this answer only."""
        body = await read_json(request)
        name, role = str(body["name"]), str(body["role"])
        now = self.now()
        entry = self.p.audit.entry(now=now, event="user.add", action="C", result=role, actor=self.actor(request),
                                   record=f"user/{name}")
        token = await self.p.users.add(name, role, now=now, also=(entry,))
        return web.json_response({"name": name, "role": role, "token": token}, status=201)

    async def revoke_user(self, request: web.Request) -> web.Response:
        name, now = request.match_info["name"], self.now()
        entry = self.p.audit.entry(now=now, event="user.revoke", action="U", result="revoked", actor=self.actor(request),
                                   record=f"user/{name}")
        await self.p.users.revoke(name, now=now, also=(entry,))
        return web.json_response({"name": name, "revoked": True})


__all__ = ["OperationRoutes"]
