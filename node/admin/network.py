"""The admin API towards the network: ask peers, subscribe, peers and revocations, notifications in and out."""

from __future__ import annotations

import base64

from aiohttp import web

from node.admin.parts import RouteGroup, error, read_json
from node.errors import ValidationError
from node.store import bsn_of
from protocol import Ack, Subscribe, Unsubscribe

PAGE = 100


def _ack(message: object) -> Ack:
    if not isinstance(message, Ack):
        raise ValidationError("the peer did not acknowledge")
    return message


def _page(request: web.Request) -> tuple[int, int]:
    """(limit, offset) of a listing, newest first."""
    return min(int(request.query.get("limit", str(PAGE))), 1000), max(0, int(request.query.get("offset", "0")))


class NetworkRoutes(RouteGroup):
    ROUTES = (
        ("POST", "/admin/v1/query", "read", "query"),
        ("POST", "/admin/v1/access-log", "read", "access_log"),
        ("POST", "/admin/v1/subscribe", "write", "subscribe"),
        ("POST", "/admin/v1/unsubscribe", "write", "unsubscribe"),
        ("GET", "/admin/v1/peers", "view", "peers"),
        ("POST", "/admin/v1/peers", "operate", "add_peer"),
        ("POST", "/admin/v1/revocations", "operate", "revocations"),
        ("POST", "/admin/v1/certificate/reload", "operate", "reload_certificate"),
        ("GET", "/admin/v1/outbox", "view", "outbox"),
        ("GET", "/admin/v1/outbox/stats", "view", "outbox_stats"),
        ("POST", "/admin/v1/outbox/retry", "operate", "outbox_retry"),
        ("GET", "/admin/v1/inbox", "view", "inbox"),
        ("GET", "/admin/v1/subscriptions", "view", "subscriptions"),
    )

    async def query(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        params = body.get("params", {})
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            raise ValidationError("params must map names to text")
        evidence = [base64.b64decode(e) for e in body.get("evidence", [])]
        if body.get("held_evidence"):  # what this node holds about the record or client asked for
            about = params.get("wlzIndicatieID") or (f"bsn:{params['bsn']}" if "bsn" in params else None)
            evidence += await self.p.held.about(about) if about else []
        template = str(body["template"])
        results = await self.p.router.query(str(body["peer"]), template, params, evidence, bool(body.get("history", False)))
        # The source audits that this node asked; this node audits which person asked, for whom.
        actor, now = self.actor(request), self.now()
        subjects: set[str | None] = {bsn_of(r.data or {}) for r, _, _ in results} - {None} or {params.get("bsn")}
        await self.p.audit.store.write([
            self.p.audit.entry(now=now, event=f"admin.query {template}", action="R",
                               result=f"{len(results)} record(s)", actor=actor, subject=subject)
            for subject in sorted(subjects, key=str)])
        return web.json_response({"records": [
            {"kind": r.kind, "id": r.record_id, "version": r.version, "source": r.source, "source_organisation": s.organisation,
             "signed_at": r.signed_at, "deleted": r.deleted, "data": r.data, "signed": base64.b64encode(raw).decode()}
            for r, s, raw in results]})

    async def access_log(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        bsn = body.get("bsn") or self.p.own_bsn
        if not isinstance(bsn, str):
            raise ValidationError("bsn is required (a client node uses its own)")
        entries = await self.p.router.access_log(str(body["peer"]), bsn, int(body.get("since", 0)))
        return web.json_response({"entries": entries})

    async def subscribe(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        reply = await self.p.router.send(str(body["peer"]), Subscribe(events=tuple(body["events"])))
        return web.json_response({"subscription_id": _ack(reply.message).ref})

    async def unsubscribe(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        reply = await self.p.router.send(str(body["peer"]), Unsubscribe(subscription_id=str(body["subscription_id"])))
        return web.json_response({"unsubscribed": _ack(reply.message).ref})

    async def peers(self, request: web.Request) -> web.Response:
        return web.json_response({"peers": [p.public() for p in self.p.peers.all()]})

    async def add_peer(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        did = await self.p.learn_from(str(body["url"]))
        if did is None:
            return error(502, "peer-unreachable", "no valid announcement at that URL")
        return web.json_response({"did": did})

    async def revocations(self, request: web.Request) -> web.Response:
        """A revocation list handed to the running node (iwlz cert revoke --install)."""
        body = await read_json(request)
        return web.json_response({"adopted": self.p.adopt_revocation_list(base64.b64decode(str(body["list"])))})

    async def reload_certificate(self, request: web.Request) -> web.Response:
        """A renewed certificate or a certified new key is in the home (iwlz cert issue): switch to it now."""
        return web.json_response({"switched": await self.p.reload_certificate()})

    async def outbox(self, request: web.Request) -> web.Response:
        limit, offset = _page(request)
        return web.json_response({"outbox": await self.p.outbox.list(request.query.get("status"), limit=limit, offset=offset)})

    async def outbox_stats(self, request: web.Request) -> web.Response:
        return web.json_response(await self.p.outbox.stats())

    async def outbox_retry(self, request: web.Request) -> web.Response:
        body = await read_json(request) if request.can_read_body else {}
        return web.json_response({"retried": await self.p.outbox.retry(body.get("id"))})

    async def inbox(self, request: web.Request) -> web.Response:
        limit, offset = _page(request)
        return web.json_response({"inbox": await self.p.inbox.list(limit=limit, offset=offset)})

    async def subscriptions(self, request: web.Request) -> web.Response:
        return web.json_response({"subscriptions": await self.p.subscriptions.all()})


__all__ = ["NetworkRoutes"]
