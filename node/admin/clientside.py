"""The admin API of a client's own node: his data from every source, who looked at it, following it, consents and
machtigingen (given, and held: acting for another client)."""

from __future__ import annotations

from aiohttp import web

from node.admin.parts import RouteGroup, read_json


class ClientRoutes(RouteGroup):
    ROUTES = (
        ("GET", "/admin/v1/client/overview", "read", "overview"),
        ("GET", "/admin/v1/client/access-log", "read", "access_log"),
        ("POST", "/admin/v1/client/follow", "write", "follow"),
        ("POST", "/admin/v1/client/unfollow", "write", "unfollow"),
        ("GET", "/admin/v1/client/consents", "read", "consents"),
        ("POST", "/admin/v1/client/consents", "write", "grant_consent"),
        ("POST", "/admin/v1/client/consents/{id}/revoke", "write", "revoke_consent"),
        ("POST", "/admin/v1/client/consents/{id}/hand-over", "write", "hand_over_consent"),
        ("POST", "/admin/v1/client/machtigingen", "write", "grant_machtiging"),
        ("GET", "/admin/v1/client/namens", "read", "represented"),
    )

    async def overview(self, request: web.Request) -> web.Response:
        """His data from every source; ?seen=1 marks the changes shown as seen; ?namens=ID: the data of the client
        whose machtiging this node holds with that id."""
        return web.json_response(await self.p.client_view.overview(mark_seen=request.query.get("seen") in ("1", "true"),
                                                                   namens=request.query.get("namens")))

    async def follow(self, request: web.Request) -> web.Response:
        """Subscribe at every source to the changes of his own records; {"namens": ID}: to those of the client whose
        machtiging this node holds with that id."""
        body = await read_json(request) if request.can_read_body else {}
        namens = body.get("namens") if isinstance(body, dict) else None
        describe = self.p.describe()
        allowed = self.p.subscriptions.matrix["allowed"]
        return web.json_response({"sources": await self.p.client_view.follow(
            endpoint=describe["url"], allowed=allowed, namens=None if namens is None else str(namens))})

    async def unfollow(self, request: web.Request) -> web.Response:
        """End the subscriptions that bring his changes here (``{"namens": ID}``: those of the client whose
        machtiging this node holds with that id); this node no longer subscribes again at its start."""
        body = await read_json(request) if request.can_read_body else {}
        namens = body.get("namens") if isinstance(body, dict) else None
        return web.json_response({"sources": await self.p.client_view.unfollow(
            namens=None if namens is None else str(namens))})

    async def consents(self, request: web.Request) -> web.Response:
        return web.json_response({"consents": await self.p.client_view.consents()})

    async def grant_consent(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        result = await self.p.client_view.grant(
            to=str(body["to"]), templates=[str(t) for t in body["templates"]], purpose=str(body["purpose"]),
            until=str(body["until"]), sources=[str(s) for s in body["sources"]])
        return web.json_response(result, status=201)

    async def revoke_consent(self, request: web.Request) -> web.Response:
        return web.json_response(await self.p.client_view.revoke(request.match_info["id"]))

    async def hand_over_consent(self, request: web.Request) -> web.Response:
        body = await read_json(request) if request.can_read_body else {}
        endpoint = body.get("endpoint")
        return web.json_response({"handed_over": await self.p.client_view.hand_over(
            request.match_info["id"], None if endpoint is None else str(endpoint))})

    async def access_log(self, request: web.Request) -> web.Response:
        return web.json_response(await self.p.client_view.access_log(since=int(request.query.get("since", "0")),
                                                                     namens=request.query.get("namens")))

    async def grant_machtiging(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        endpoint = body.get("endpoint")
        result = await self.p.client_view.grant_machtiging(to=str(body["to"]), until=str(body["until"]),
                                                           endpoint=None if endpoint is None else str(endpoint))
        return web.json_response(result, status=201)

    async def represented(self, request: web.Request) -> web.Response:
        """The clients this node acts for: the machtigingen it holds; and what a client needs to give it one."""
        describe = self.p.describe()
        return web.json_response({"namens": await self.p.client_view.represented(),
                                  "deze_node": {"did": describe["did"], "endpoint": describe["url"]}})


__all__ = ["ClientRoutes"]
