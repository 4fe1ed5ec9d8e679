"""The admin API's meldingen: report an error to a source, follow what was reported, answer what came in."""

from __future__ import annotations

from aiohttp import web

from node.admin.parts import RouteGroup, read_json
from node.errors import ValidationError

STATES = ("all", "open", "overdue")


class MeldingRoutes(RouteGroup):
    ROUTES = (
        ("POST", "/admin/v1/melding", "write", "send"),
        ("GET", "/admin/v1/meldingen/sent", "view", "sent"),
        ("GET", "/admin/v1/meldingen", "view", "received"),
        ("POST", "/admin/v1/meldingen/{id}/answer", "write", "answer"),
    )

    async def send(self, request: web.Request) -> web.Response:
        """Queue a melding in the outbox: it reaches the source also when the source is away right now."""
        body = await read_json(request)
        melding_id = await self.p.meldingen_sent.send(
            str(body["peer"]), record=str(body["record"]), rule=str(body["rule"]),
            description=str(body.get("description", "")), now=int(self.p.clock()))
        return web.json_response({"melding_id": melding_id, "status": "queued"}, status=202)

    async def sent(self, request: web.Request) -> web.Response:
        return web.json_response({"meldingen": await self.p.meldingen_sent.list()})

    async def received(self, request: web.Request) -> web.Response:
        state = request.query.get("state", "all")
        if state not in STATES:
            raise ValidationError(f"state is one of {', '.join(STATES)}")
        return web.json_response({"meldingen": await self.p.melding_desk.list(state=state)})

    async def answer(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        reason = body.get("reason")
        answered = await self.p.melding_desk.answer(request.match_info["id"], str(body["status"]),
                                                    str(reason) if reason else None, actor=self.actor(request))
        return web.json_response(answered)


__all__ = ["MeldingRoutes"]
