"""The admin API's routes: the organisation's own registers, asking peers, audit, peers, notifications."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from aiohttp import web

from node.discovery import PeerTable, Router
from node.errors import ValidationError
from node.care.meldingen import MeldingDesk
from node.notify import Inbox, MeldingenSent, Outbox, Subscriptions
from node.overview import ClientView
from node.store import Actor, AuditLog, HeldEvidence, Registers
from protocol import Ack, Subscribe, Unsubscribe


@dataclass(frozen=True)
class AdminParts:
    """What the admin API works with."""

    token: str
    describe: Callable[[], dict[str, Any]]  # did, role, organisation, url, templates
    own_bsn: str | None  # a client node's own BSN, the default for its access-log requests
    actor: Callable[[], Actor]  # this node's own actor (its did changes when its key does)
    clock: Callable[[], float]
    registers: Registers
    audit: AuditLog
    router: Router
    peers: PeerTable
    learn_from: Callable[[str], Awaitable[str | None]]
    outbox: Outbox
    inbox: Inbox
    subscriptions: Subscriptions
    meldingen_sent: MeldingenSent
    melding_desk: MeldingDesk
    purge: Callable[[date | None, bool], Awaitable[dict[str, Any]]]  # retention, or what it would remove
    adopt_revocation_list: Callable[[bytes], bool]
    reload_certificate: Callable[[], Awaitable[bool]]
    check_witnesses: Callable[[], Awaitable[tuple[bool, str]]]
    client_view: ClientView
    held: HeldEvidence


def error(status: int, name: str, reason: str, **extra: Any) -> web.Response:
    return web.json_response({"error": name, "reason": reason, **extra}, status=status)


async def read_json(request: web.Request) -> Any:
    try:
        return await request.json()
    except json.JSONDecodeError as exc:
        raise ValidationError("request body is not JSON") from exc


def _ack(message: object) -> Ack:
    if not isinstance(message, Ack):
        raise ValidationError("the peer did not acknowledge")
    return message


class AdminRoutes:
    def __init__(self, parts: AdminParts) -> None:
        self.p = parts

    def now(self) -> int:
        return int(self.p.clock())

    def add_to(self, app: web.Application) -> None:
        add_get, add_post = app.router.add_get, app.router.add_post
        add_get("/admin/v1/node", self.info)
        add_get("/admin/v1/records/{kind}", self.list_records)
        add_post("/admin/v1/records/{kind}", self.put_record)
        add_post("/admin/v1/records/{kind}/bulk", self.bulk_load)
        add_get("/admin/v1/records/{kind}/{id}", self.get_record)
        app.router.add_delete("/admin/v1/records/{kind}/{id}", self.delete_record)
        add_post("/admin/v1/query", self.query)
        add_post("/admin/v1/access-log", self.access_log)
        add_get("/admin/v1/audit", self.audit)
        add_get("/admin/v1/audit/verify", self.audit_verify)
        add_get("/admin/v1/peers", self.peers)
        add_post("/admin/v1/peers", self.add_peer)
        add_post("/admin/v1/purge", self.purge)
        add_get("/admin/v1/outbox", self.outbox)
        add_get("/admin/v1/outbox/stats", self.outbox_stats)
        add_post("/admin/v1/outbox/retry", self.outbox_retry)
        add_get("/admin/v1/inbox", self.inbox)
        add_get("/admin/v1/subscriptions", self.subscriptions)
        add_post("/admin/v1/subscribe", self.subscribe)
        add_post("/admin/v1/unsubscribe", self.unsubscribe)
        add_post("/admin/v1/revocations", self.revocations)
        add_post("/admin/v1/certificate/reload", self.reload_certificate)
        add_get("/admin/v1/client/overview", self.client_overview)
        add_get("/admin/v1/client/access-log", self.client_access_log)
        add_post("/admin/v1/client/follow", self.client_follow)
        add_get("/admin/v1/client/consents", self.consents)
        add_post("/admin/v1/client/consents", self.grant_consent)
        add_post("/admin/v1/client/consents/{id}/revoke", self.revoke_consent)
        add_post("/admin/v1/client/consents/{id}/hand-over", self.hand_over_consent)

    # The own registers ----------------------------------------------------

    async def info(self, request: web.Request) -> web.Response:
        return web.json_response({**self.p.describe(), "records": await self.p.registers.count()})

    async def list_records(self, request: web.Request) -> web.Response:
        limit = min(int(request.query.get("limit", "100")), 1000)
        offset = int(request.query.get("offset", "0"))
        found = await self.p.registers.list_current(request.match_info["kind"], limit=limit, offset=offset)
        return web.json_response({"records": [r.summary() for r in found]})

    async def put_record(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        stored, changed = await self.p.registers.put(request.match_info["kind"], data, actor=self.p.actor(), now=self.now())
        return web.json_response({"kind": stored.kind, "id": stored.record_id, "version": stored.version, "changed": changed},
                                 status=201 if changed and stored.version == 1 else 200)

    async def bulk_load(self, request: web.Request) -> web.Response:
        """New records in one transaction (first versions only), with their notifications."""
        records = await read_json(request)
        if not isinstance(records, list):
            raise ValidationError("a bulk load is a JSON list of records")
        loaded = await self.p.registers.load_many(request.match_info["kind"], records, actor=self.p.actor(), now=self.now())
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
        return web.json_response({"versions": [v.summary() for v in versions]})

    async def delete_record(self, request: web.Request) -> web.Response:
        stored = await self.p.registers.delete(request.match_info["kind"], request.match_info["id"], actor=self.p.actor(),
                                               now=self.now())
        return web.json_response({"kind": stored.kind, "id": stored.record_id, "version": stored.version, "deleted": True})

    async def purge(self, request: web.Request) -> web.Response:
        body = await read_json(request) if request.can_read_body else {}
        today = date.fromisoformat(body["today"]) if body.get("today") else None
        return web.json_response(await self.p.purge(today, bool(body.get("dry_run"))))

    # Asking peers -----------------------------------------------------------

    async def query(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        params = body.get("params", {})
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            raise ValidationError("params must map names to text")
        evidence = [base64.b64decode(e) for e in body.get("evidence", [])]
        if body.get("held_evidence"):  # what this node holds about the record or client asked for
            about = params.get("wlzIndicatieID") or (f"bsn:{params['bsn']}" if "bsn" in params else None)
            evidence += await self.p.held.about(about) if about else []
        results = await self.p.router.query(str(body["peer"]), str(body["template"]), params, evidence,
                                            bool(body.get("history", False)))
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

    # Audit, peers, notifications -----------------------------------------------

    async def audit(self, request: web.Request) -> web.Response:
        entries = await self.p.audit.entries(subject=request.query.get("subject"), since_seq=int(request.query.get("since", "0")),
                                             limit=min(int(request.query.get("limit", "1000")), 10_000))
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

    # A client's own view ----------------------------------------------------------------

    async def client_overview(self, request: web.Request) -> web.Response:
        """His data from every source; ?seen=1 marks the changes shown as seen."""
        return web.json_response(await self.p.client_view.overview(mark_seen=request.query.get("seen") in ("1", "true")))

    async def client_follow(self, request: web.Request) -> web.Response:
        """Subscribe at every source to the changes of his own records."""
        describe = self.p.describe()
        allowed = self.p.subscriptions.matrix["allowed"]
        return web.json_response({"sources": await self.p.client_view.follow(endpoint=describe["url"], allowed=allowed)})

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
        return web.json_response({"handed_over": await self.p.client_view.hand_over(request.match_info["id"])})

    async def client_access_log(self, request: web.Request) -> web.Response:
        return web.json_response(await self.p.client_view.access_log(since=int(request.query.get("since", "0"))))

    async def reload_certificate(self, request: web.Request) -> web.Response:
        """A renewed certificate or a certified new key is in the home (iwlz cert issue): switch to it now."""
        return web.json_response({"switched": await self.p.reload_certificate()})

    async def outbox(self, request: web.Request) -> web.Response:
        return web.json_response({"outbox": await self.p.outbox.list(request.query.get("status"))})

    async def outbox_stats(self, request: web.Request) -> web.Response:
        return web.json_response(await self.p.outbox.stats())

    async def outbox_retry(self, request: web.Request) -> web.Response:
        body = await read_json(request) if request.can_read_body else {}
        return web.json_response({"retried": await self.p.outbox.retry(body.get("id"))})

    async def inbox(self, request: web.Request) -> web.Response:
        return web.json_response({"inbox": await self.p.inbox.list()})

    async def subscriptions(self, request: web.Request) -> web.Response:
        return web.json_response({"subscriptions": await self.p.subscriptions.all()})


__all__ = ["AdminParts", "AdminRoutes", "error", "read_json"]
