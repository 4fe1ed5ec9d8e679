"""The local admin API: JSON over HTTP for the organisation's own systems.

Bound to 127.0.0.1 unless configured otherwise; every call needs the bearer
token from the node's home (admin.token). A wrong or missing token gets 401
and changes nothing.
"""

from __future__ import annotations

import base64
import hmac
import json
import uuid
from datetime import date
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from node.errors import NetworkError, NodeError, PeerRefused, ValidationError
from protocol import MELDING_EVENT, LocalProtocolError, Melding, Subscribe, Unsubscribe

if TYPE_CHECKING:
    from node.service import Node

MAX_BODY = 4 * 1024 * 1024


def _error(status: int, error: str, reason: str, **extra: Any) -> web.Response:
    return web.json_response({"error": error, "reason": reason, **extra}, status=status)


def admin_app(node: Node) -> web.Application:
    token = node.home.admin_token()

    @web.middleware
    async def authenticate(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "GET" and request.path == "/dashboard":
            return await handler(request)  # type: ignore[no-any-return]  # static page; its data needs the token
        offered = request.headers.get("Authorization", "")
        if not hmac.compare_digest(offered.encode(), f"Bearer {token}".encode()):
            return _error(401, "unauthorized", "a valid bearer token is required", )
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except PeerRefused as exc:
            return _error(502, "peer-refused", exc.reason, code=exc.code, rule=exc.rule)
        except NetworkError as exc:
            return _error(502, "peer-unreachable", str(exc))
        except ValidationError as exc:
            return _error(400, "invalid", str(exc))
        except NodeError as exc:
            return _error(503, "unavailable", str(exc))
        except LocalProtocolError as exc:
            return _error(400, "invalid", exc.reason)
        except (ValueError, KeyError, TypeError) as exc:
            return _error(400, "invalid", f"bad request: {exc.__class__.__name__}")

    app = web.Application(middlewares=[authenticate], client_max_size=MAX_BODY)
    routes = AdminRoutes(node)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/admin/v1/node", routes.info)
    app.router.add_get("/admin/v1/records/{kind}", routes.list_records)
    app.router.add_post("/admin/v1/records/{kind}", routes.put_record)
    app.router.add_post("/admin/v1/records/{kind}/bulk", routes.bulk_load)
    app.router.add_get("/admin/v1/records/{kind}/{id}", routes.get_record)
    app.router.add_delete("/admin/v1/records/{kind}/{id}", routes.delete_record)
    app.router.add_post("/admin/v1/query", routes.query)
    app.router.add_post("/admin/v1/access-log", routes.access_log)
    app.router.add_get("/admin/v1/audit", routes.audit)
    app.router.add_get("/admin/v1/audit/verify", routes.audit_verify)
    app.router.add_get("/admin/v1/peers", routes.peers)
    app.router.add_post("/admin/v1/peers", routes.add_peer)
    app.router.add_get("/admin/v1/meldingen", routes.meldingen)
    app.router.add_post("/admin/v1/purge", routes.purge)
    app.router.add_get("/admin/v1/outbox", routes.outbox)
    app.router.add_get("/admin/v1/outbox/stats", routes.outbox_stats)
    app.router.add_post("/admin/v1/outbox/retry", routes.outbox_retry)
    app.router.add_get("/admin/v1/inbox", routes.inbox)
    app.router.add_get("/admin/v1/subscriptions", routes.subscriptions)
    app.router.add_post("/admin/v1/subscribe", routes.subscribe)
    app.router.add_post("/admin/v1/unsubscribe", routes.unsubscribe)
    app.router.add_post("/admin/v1/melding", routes.melding)
    return app


async def dashboard(request: web.Request) -> web.Response:
    page = resources.files("node").joinpath("static/dashboard.html").read_text(encoding="utf-8")
    return web.Response(text=page, content_type="text/html",
                        headers={"Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
                                 "Cache-Control": "no-store"})


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except json.JSONDecodeError as exc:
        raise ValidationError("request body is not JSON") from exc


class AdminRoutes:
    def __init__(self, node: Node) -> None:
        self.node = node

    async def info(self, request: web.Request) -> web.Response:
        n = self.node
        return web.json_response({"did": n.identity.did, "role": n.member.role, "organisation": n.member.organisation,
                                  "url": n.url, "templates": n.pdp.templates(), "records": await n.registers.count()})

    async def list_records(self, request: web.Request) -> web.Response:
        limit = min(int(request.query.get("limit", "100")), 1000)
        offset = int(request.query.get("offset", "0"))
        found = await self.node.registers.list(request.match_info["kind"], limit=limit, offset=offset)
        return web.json_response({"records": [r.summary() for r in found]})

    async def put_record(self, request: web.Request) -> web.Response:
        data = await _json(request)
        stored, changed = await self.node.registers.put(request.match_info["kind"], data, actor=self.node.actor,
                                                        now=self.node.now())
        return web.json_response({"kind": stored.kind, "id": stored.record_id, "version": stored.version, "changed": changed},
                                 status=201 if changed and stored.version == 1 else 200)

    async def bulk_load(self, request: web.Request) -> web.Response:
        """New records in one transaction (first versions only), with their notifications."""
        records = await _json(request)
        if not isinstance(records, list):
            raise ValidationError("a bulk load is a JSON list of records")
        loaded = await self.node.registers.load_many(request.match_info["kind"], records, actor=self.node.actor,
                                                     now=self.node.now())
        return web.json_response({"loaded": loaded}, status=201)

    async def get_record(self, request: web.Request) -> web.Response:
        kind, record_id = request.match_info["kind"], request.match_info["id"]
        if request.query.get("history") in ("1", "true"):
            versions = await self.node.registers.history(kind, record_id)
        else:
            current = await self.node.registers.current(kind, record_id)
            versions = [current] if current else []
        if not versions:
            return _error(404, "not-found", f"no {kind} with that id")
        return web.json_response({"versions": [v.summary() for v in versions]})

    async def delete_record(self, request: web.Request) -> web.Response:
        stored = await self.node.registers.delete(request.match_info["kind"], request.match_info["id"],
                                                  actor=self.node.actor, now=self.node.now())
        return web.json_response({"kind": stored.kind, "id": stored.record_id, "version": stored.version, "deleted": True})

    async def query(self, request: web.Request) -> web.Response:
        body = await _json(request)
        params = body.get("params", {})
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            raise ValidationError("params must map names to text")
        evidence = [base64.b64decode(e) for e in body.get("evidence", [])]
        results = await self.node.query_peer(str(body["peer"]), str(body["template"]), params, evidence,
                                             bool(body.get("history", False)))
        return web.json_response({"records": [
            {"kind": r.kind, "id": r.record_id, "version": r.version, "source": r.source, "source_organisation": s.organisation,
             "signed_at": r.signed_at, "deleted": r.deleted, "data": r.data, "signed": base64.b64encode(raw).decode()}
            for r, s, raw in results]})

    async def access_log(self, request: web.Request) -> web.Response:
        body = await _json(request)
        bsn = body.get("bsn") or self.node.config.identifiers.get("bsn")
        if not isinstance(bsn, str):
            raise ValidationError("bsn is required (a client node uses its own)")
        entries = await self.node.access_log(str(body["peer"]), bsn, int(body.get("since", 0)))
        return web.json_response({"entries": entries})

    async def audit(self, request: web.Request) -> web.Response:
        entries = await self.node.audit.entries(subject=request.query.get("subject"), since_seq=int(request.query.get("since", "0")),
                                                limit=min(int(request.query.get("limit", "1000")), 10_000))
        return web.json_response({"entries": [e.public() for e in entries]})

    async def audit_verify(self, request: web.Request) -> web.Response:
        intact, count, detail = await self.node.audit.verify()
        return web.json_response({"intact": intact, "entries": count, "detail": detail})

    async def peers(self, request: web.Request) -> web.Response:
        return web.json_response({"peers": [p.public() for p in self.node.peers.all()]})

    async def add_peer(self, request: web.Request) -> web.Response:
        body = await _json(request)
        did = await self.node.learn_from(str(body["url"]), source="manual")
        if did is None:
            return _error(502, "peer-unreachable", "no valid announcement at that URL")
        return web.json_response({"did": did})

    async def meldingen(self, request: web.Request) -> web.Response:
        rows = await self.node.store.fetchall(
            "SELECT melding_id, received_at, sender_did, sender_org, rule, record, description, status FROM meldingen ORDER BY received_at")
        keys = ("melding_id", "received_at", "sender_did", "sender_org", "rule", "record", "description", "status")
        return web.json_response({"meldingen": [dict(zip(keys, row)) for row in rows]})

    async def outbox(self, request: web.Request) -> web.Response:
        return web.json_response({"outbox": await self.node.outbox.list(request.query.get("status"))})

    async def outbox_stats(self, request: web.Request) -> web.Response:
        rows = await self.node.store.fetchall("SELECT status, count(*) FROM outbox GROUP BY status")
        return web.json_response({status: count for status, count in rows})

    async def outbox_retry(self, request: web.Request) -> web.Response:
        body = await _json(request) if request.can_read_body else {}
        return web.json_response({"retried": await self.node.outbox.retry(body.get("id"))})

    async def inbox(self, request: web.Request) -> web.Response:
        return web.json_response({"inbox": await self.node.inbox.list()})

    async def subscriptions(self, request: web.Request) -> web.Response:
        keys = ("subscription_id", "subscriber_did", "subscriber_org", "receiver_id_type", "receiver_id", "events", "created_at")
        rows = await self.node.store.fetchall(f"SELECT {', '.join(keys)} FROM subscriptions ORDER BY created_at")
        return web.json_response({"subscriptions": [dict(zip(keys, r)) | {"events": json.loads(r[5])} for r in rows]})

    async def subscribe(self, request: web.Request) -> web.Response:
        body = await _json(request)
        reply = await self.node.send_to_peer(str(body["peer"]), Subscribe(events=tuple(body["events"])))
        return web.json_response({"subscription_id": reply.message.ref})  # type: ignore[attr-defined]

    async def unsubscribe(self, request: web.Request) -> web.Response:
        body = await _json(request)
        reply = await self.node.send_to_peer(str(body["peer"]), Unsubscribe(subscription_id=str(body["subscription_id"])))
        return web.json_response({"unsubscribed": reply.message.ref})  # type: ignore[attr-defined]

    async def melding(self, request: web.Request) -> web.Response:
        body = await _json(request)
        melding = Melding(melding_id=str(uuid.uuid4()), event_type=MELDING_EVENT, rule=str(body["rule"]),
                          record=str(body["record"]), description=str(body.get("description", "")))
        reply = await self.node.send_to_peer(str(body["peer"]), melding)
        return web.json_response({"melding_id": melding.melding_id, "status": reply.message.status})  # type: ignore[attr-defined]

    async def purge(self, request: web.Request) -> web.Response:
        body = await _json(request) if request.can_read_body else {}
        today = date.fromisoformat(body["today"]) if body.get("today") else date.today()
        removed = await self.node.registers.purge(today=today, actor=self.node.actor, now=self.node.now())
        return web.json_response({"purged": removed})


__all__ = ["admin_app"]
