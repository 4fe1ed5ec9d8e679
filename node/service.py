"""The node: its components put together, and the handlers for what peers send.

Per request the path is: size limit → Endpoint.receive (all protocol checks,
no database work) → the handler for the message type (policy decision,
register read) → audit entries and replay ids go to the store in the group
commit of this loop turn → the signed reply leaves after that commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from keys import KeysError, Member, cbor, cose
from node.audit import Actor, AuditLog, utc
from node.client import ANNOUNCEMENT_PATH, MESSAGES_PATH, PeerClient
from node.errors import ConfigError, NetworkError, NodeError, PeerRefused
from node.home import NodeHome
from node.gossip import Gossiper
from node.metrics import Metrics
from node.notifications import Inbox, Outbox, Subscriptions
from node.peers import PeerTable
from node.policy import Denied, PolicyDecisionPoint, View
from node.records import RECORD_TYPES, registers_for
from node.registers import Registers
from node.store import Statement, Store
from protocol import (
    MEDIA_TYPE,
    AccessLogRequest,
    AccessLogResult,
    Ack,
    Announcement,
    Endpoint,
    Error,
    ErrorCode,
    Incoming,
    Melding,
    Message,
    Notification,
    PeerExchange,
    Query,
    QueryResult,
    RemoteProtocolError,
    ReplayGuard,
    RevocationNews,
    Subscribe,
    Unsubscribe,
)
from protocol.events import EVENT_RULES
from protocol.gossip import Known, Planned
from protocol.records import RecordVersion, verify_record

log = logging.getLogger(__name__)

Handler = Callable[[Incoming, int], Awaitable[tuple[Message, list[Statement]]]]


class Node:
    def __init__(self, home: NodeHome, *, host: str | None = None, port: int | None = None,
                 admin_port: int | None = None, public_url: str | None = None, bootstrap: list[str] | None = None,
                 clock: Callable[[], float] = time.time, gossip_interval: float | None = None,
                 mdns: bool | None = None, mdns_interfaces: list[str] | None = None) -> None:
        self.home = home
        self.config = home.config()
        self.host = host or self.config.host
        self.port = self.config.port if port is None else port
        self.admin_port = 0 if admin_port is None else admin_port
        self.public_url = public_url or self.config.public_url
        self.bootstrap = list(bootstrap if bootstrap is not None else self.config.bootstrap)
        self.clock = clock
        self.gossip_interval = gossip_interval if gossip_interval is not None else self.config.gossip_interval
        self.mdns_enabled = self.config.mdns if mdns is None else mdns
        self.mdns_interfaces = mdns_interfaces if mdns_interfaces is not None else self.config.mdns_interfaces
        self.mdns: Any = None
        self.on_notification: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self.metrics = Metrics()
        self.ready = False
        self.url = ""
        self.admin_url = ""
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._handlers: dict[type[Message], Handler] = {
            Query: self._on_query,
            AccessLogRequest: self._on_access_log,
            Melding: self._on_melding,
            RevocationNews: self._on_revocation_news,
            Announcement: self._on_announcement,
            PeerExchange: self._on_peer_exchange,
            Notification: self._on_notification,
            Subscribe: self._on_subscribe,
            Unsubscribe: self._on_unsubscribe,
        }

    def now(self) -> int:
        return int(self.clock())

    # Lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        self.identity = self.home.identity()
        self.certificate = self.home.certificate()
        self.trust = self.home.trust_store()
        try:
            self.member = self.trust.verify_certificate(self.certificate, self.now())
        except KeysError as exc:
            raise ConfigError(f"this node's own certificate is not valid ({exc.code}): {exc.reason}") from exc
        self.store = Store(self.home.database_path, synchronous=self.config.synchronous)
        await self.store.open()
        replay = ReplayGuard()
        replay.load((s, bytes(m), int(f)) for s, m, f in await self.store.fetchall(
            "SELECT sender, message_id, forget_after FROM replay WHERE forget_after >= ?", (self.now(),)))
        self.endpoint = Endpoint(self.identity, self.certificate, self.trust, replay)
        self.audit = AuditLog(self.store, self.identity)
        await self.audit.load()
        self.registers = Registers(self.store, self.identity, self.certificate, self.member.role, self.audit)
        self.pdp = PolicyDecisionPoint(self.registers, self.trust, freshness=self.config.evidence_freshness,
                                       confirm=self._confirm_evidence)
        self.peers = PeerTable(self.store, self.identity.did)
        await self.peers.load()
        self.client = PeerClient(self.endpoint, clock=self.clock)
        self.actor = Actor(self.identity.did, self.member.role, self.member.organisation)
        from node.admin import admin_app  # the admin API needs the started node

        peer_runner = await self._serve(self._peer_app(), self.host, self.port)
        self.url = self.public_url or f"http://{self.host}:{peer_runner.addresses[0][1]}"
        admin_runner = await self._serve(admin_app(self), self.config.admin_host, self.admin_port)
        self.admin_url = f"http://{self.config.admin_host}:{admin_runner.addresses[0][1]}"
        self.outbox = Outbox(self, first_delay=self.config.outbox_first_delay, max_delay=self.config.outbox_max_delay,
                             dead_after=self.config.outbox_dead_after)
        self.inbox = Inbox(self, hook=self.on_notification)
        self.subscriptions = Subscriptions(self)
        self.registers.notifier = self.outbox.statements_for
        self.registers.on_written = self.outbox.wake
        self.gossiper = Gossiper(self, interval=self.gossip_interval, fanout=self.config.gossip_fanout)
        for peer in self.peers.all():
            self.gossiper.table.offer(Known(peer.did, peer.seq, peer.expires, peer.announcement))
        self._announce()
        own = self.url.rstrip("/")
        self._unreached = [u for u in random.sample(self.bootstrap, len(self.bootstrap)) if u.rstrip("/") != own]
        await self._bootstrap()
        if self.gossip_interval > 0:
            self.background(asyncio.create_task(self.gossiper.run(), name="gossip"))
        self.background(asyncio.create_task(self.outbox.run(), name="outbox"))
        self.background(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        await self.inbox.resume()
        if self.mdns_enabled:
            from node.mdns import Mdns

            self.mdns = Mdns(self, interfaces=self.mdns_interfaces)
            await self.mdns.start()
        self._write_run_file()
        self.ready = True
        log.info("node %s (%s) ready at %s, admin at %s", self.identity.did, self.member.role, self.url, self.admin_url)

    async def _serve(self, app: web.Application, host: str, port: int) -> web.AppRunner:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        self._runners.append(runner)
        return runner

    def background(self, task: asyncio.Task[Any]) -> None:
        """Keep a task the node started, so that stop() ends it."""
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(task)

    async def stop(self) -> None:
        self.ready = False
        if self.mdns is not None:
            await self.mdns.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - ending, nothing to report
                pass
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.client.close()
        await self.store.close()
        try:
            (self.home.path / "run.json").unlink()
        except FileNotFoundError:
            pass

    def _write_run_file(self) -> None:
        info = {"pid": os.getpid(), "did": self.identity.did, "url": self.url, "admin_url": self.admin_url}
        tmp = self.home.path / ".run.json.tmp"
        tmp.write_text(json.dumps(info) + "\n")
        tmp.replace(self.home.path / "run.json")

    # Announcement and peers ------------------------------------------------

    def _announce(self) -> None:
        """Sign a fresh announcement (a higher seq replaces the old one everywhere)."""
        now = self.now()
        seq = max(now, getattr(self, "_announced_seq", 0) + 1)
        events = tuple(sorted(e for e, rule in EVENT_RULES.items() if rule.sender_role == self.member.role))
        message = Announcement(seq=seq, endpoints=(self.url,), registers=tuple(registers_for(self.member.role)),
                               templates=tuple(self.pdp.templates()), events=events)
        lifetime = self.config.announcement_lifetime
        self.announcement = self.endpoint.send(message, to="*", now=now, lifetime=lifetime).data
        self._announced_seq, self._announced_at = seq, now
        self.gossiper.own(self.announcement, seq, now + lifetime)

    async def _bootstrap(self) -> None:
        """Introduce ourselves to one bootstrap peer that answers (at start they may not be up yet);
        a bootstrap peer learns all the others.

        One is enough for anyone else: it hands us a sample of peers and gossip
        does the rest, and a bootstrap peer asked by fewer newcomers has more to give each.
        """
        for url in list(self._unreached):
            did = await self.learn_from(url, source="bootstrap")
            if did is None:
                continue
            self._unreached.remove(url)
            self.gossiper.bootstrap_dids.add(did)
            await self.gossiper.exchange(Planned(did, introduce=True), [])
            if not self.gossiper.is_bootstrap:
                return

    async def _housekeeping(self, every: float = 60.0) -> None:
        """Forget replay ids that the time window refuses anyway, in memory and in the store."""
        while True:
            await asyncio.sleep(every)
            now = self.now()
            self.endpoint.replay.prune(now)
            try:
                await self.store.write([("DELETE FROM replay WHERE forget_after < ?", (now,), False)])
            except NodeError as exc:
                log.warning("housekeeping failed: %s", exc.__class__.__name__)

    async def maintain_peers(self) -> None:
        """Re-announce at half life; drop peers whose announcement expired or who were revoked;
        try the bootstrap peers that were not reachable yet."""
        if self._unreached and (self.gossiper.is_bootstrap or not self.gossiper.bootstrap_dids):
            await self._bootstrap()
        now = self.now()
        if now - self._announced_at >= self.config.announcement_lifetime // 2:
            self._announce()
        gone, statements = self.peers.prune(now=now, trust=self.trust)
        if statements:
            self.gossiper.forget(gone)
            await self.store.write(statements)

    async def absorb_announcements(self, announcements: tuple[bytes, ...] | list[bytes], *, source: str) -> int:
        """Verify relayed announcements; the valid, newer ones enter the peer table."""
        statements = []
        returning: list[Member] = []
        now = self.now()
        for data in announcements:
            known = self._quick_seq(data)
            if known is not None and not self.gossiper.table.is_news(*known):
                continue  # not news: spare the signature check
            try:
                incoming = self.endpoint.verify_broadcast(data, now=now)
            except RemoteProtocolError as exc:
                log.info("dropped a relayed announcement (%s)", exc.code.value)
                continue
            statement = self.peers.accept(incoming, source=source, now=now)
            if statement is not None:
                statements.append(statement)
                self.gossiper.learned(incoming)
                returning.append(incoming.sender)
        if statements:
            await self.store.write(statements)
        for member in returning:
            await self.outbox.peer_back(member.did, dict(member.identifiers))
        return len(statements)

    @staticmethod
    def _quick_seq(data: bytes) -> tuple[str, int] | None:
        """(sender, seq) read from an announcement without checking it, to skip what is not news."""
        try:
            payload = cbor.decode(cose.parse_sign1(data).payload)
            return str(payload["from"]), int(payload["body"]["seq"])
        except (KeysError, KeyError, TypeError, ValueError):
            return None  # anything odd gets the full check

    async def learn_from(self, url: str, *, source: str) -> str | None:
        """Fetch and verify a node's announcement at ``url``; returns its did."""
        try:
            incoming = await self.client.fetch_announcement(url)
        except NetworkError as exc:
            log.warning("no announcement from %s: %s", url, exc)
            return None
        statement = self.peers.accept(incoming, source=source, now=self.now())
        if statement is not None:
            self.gossiper.learned(incoming)
            await self.store.write([statement])
            await self.outbox.peer_back(incoming.sender.did, dict(incoming.sender.identifiers))
        return incoming.envelope.sender

    async def peer_for(self, target: str) -> tuple[str, str]:
        """(url, did) of a peer named by did, by URL, by the register it holds (``register:indicatie``)
        or by an identifier in its certificate (``uzovi:5151``, ``agb:…``, ``kvk:…``)."""
        kind, _, value = target.partition(":")
        if kind == "register":
            holders = self.peers.holding(value)
            if not holders:
                raise NetworkError(f"no peer announces the {value} register")
            return holders[0].url, holders[0].did
        if kind in ("uzovi", "agb", "kvk"):
            peer = self.peers.by_identifier(kind, value)
            if peer is None:
                raise NetworkError(f"no peer with {kind} {value} in the peer table")
            return peer.url, peer.did
        if target.startswith("did:"):
            peer = self.peers.get(target)
            if peer is None:
                raise NetworkError(f"no peer {target} in the peer table")
            return peer.url, peer.did
        did = await self.learn_from(target, source="manual")
        if did is None:
            raise NetworkError(f"{target} did not give a valid announcement")
        return target, did

    # The peer API ----------------------------------------------------------

    def _peer_app(self) -> web.Application:
        app = web.Application(client_max_size=self.endpoint.max_size)
        app.router.add_post(MESSAGES_PATH, self._http_message)
        app.router.add_get(ANNOUNCEMENT_PATH, self._http_announcement)
        app.router.add_get("/iwlz/v1/policy", self._http_policy)
        app.router.add_get("/health", self._http_health)
        app.router.add_get("/metrics", self._http_metrics)
        return app

    async def _http_announcement(self, request: web.Request) -> web.Response:
        return web.Response(body=self.announcement, content_type="application/cose")

    async def _http_policy(self, request: web.Request) -> web.Response:
        return web.json_response(self.pdp.matrix, dumps=lambda v: json.dumps(v, indent=2, ensure_ascii=False))

    async def _http_health(self, request: web.Request) -> web.Response:
        if not self.ready:
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ready", "did": self.identity.did, "role": self.member.role})

    async def _http_metrics(self, request: web.Request) -> web.Response:
        self.metrics.records.set(await self.registers.count())
        row = await self.store.fetchone("SELECT count(*) FROM audit")
        self.metrics.audit_entries.set(row[0] if row else 0)
        self.metrics.peers.set(len(self.peers))
        return web.Response(body=self.metrics.render(), headers={"Content-Type": self.metrics.content_type})

    async def _http_message(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        limit = self.endpoint.max_size
        now = self.now()
        if request.content_length is not None and request.content_length > limit:
            data = b""
        else:
            data = await request.content.read(limit + 1)
        kind = "unknown"
        try:
            if len(data) > limit or (request.content_length or 0) > limit:
                raise RemoteProtocolError(ErrorCode.TOO_LARGE, f"message exceeds {limit} bytes")
            incoming = self.endpoint.receive(data, now=now)
        except RemoteProtocolError as exc:
            self.metrics.count_request(kind, exc.code.value)
            log.info("refused a message (%s): %s", exc.code.value, exc.reason)
            reply = self.endpoint.error_reply(data, exc, now=now)
            return self._cose(reply.data, exc.status_hint)
        kind = incoming.envelope.type
        status, body = await self._dispatch(incoming, now)
        self.metrics.observe_latency(kind, time.perf_counter() - started)
        return self._cose(body, status)

    @staticmethod
    def _cose(body: bytes, status: int) -> web.Response:
        return web.Response(body=body, status=status, headers={"Content-Type": MEDIA_TYPE})

    async def _dispatch(self, incoming: Incoming, now: int) -> tuple[int, bytes]:
        kind = incoming.envelope.type
        handler = self._handlers.get(type(incoming.message))
        statements: list[Statement] = []
        try:
            if handler is None:
                raise RemoteProtocolError(ErrorCode.UNSUPPORTED, f"this node does not handle {kind} messages")
            reply, statements = await handler(incoming, now)
            status, outcome = 200, "ok"
        except RemoteProtocolError as exc:
            reply, status, outcome = Error(code=exc.code.value, reason=exc.reason, rule=exc.rule), exc.status_hint, exc.code.value
            if isinstance(exc, Denied):
                statements = self._audit_denied(incoming, exc, now)
        except NodeError as exc:
            log.error("handling %s failed: %s", kind, exc.__class__.__name__)
            reply, status, outcome = Error(code="unavailable", reason="the node could not handle this now", rule=None), 503, "unavailable"
        statements.extend(("INSERT OR IGNORE INTO replay (sender, message_id, forget_after) VALUES (?, ?, ?)", entry, False)
                          for entry in self.endpoint.replay.drain_new())
        try:
            if statements:
                await self.store.write(statements)
        except NodeError:
            reply, status, outcome = Error(code="unavailable", reason="the store could not commit", rule=None), 503, "unavailable"
        self.metrics.count_request(kind, outcome)
        return status, self.endpoint.reply(incoming, reply, now=now).data

    def _audit_denied(self, incoming: Incoming, exc: Denied, now: int) -> list[Statement]:
        message = incoming.message
        subject = message.params.get("bsn") if isinstance(message, Query) else None
        self.metrics.count_decision(exc.rule or "", "denied")
        event = f"query {message.template}" if isinstance(message, Query) else incoming.envelope.type
        return [self.audit.entry(now=now, event=event, action="R", result="denied", actor=self._actor(incoming.sender),
                                 subject=subject, trace_id=incoming.envelope.trace_id, rule=exc.rule, request=incoming.data)]

    @staticmethod
    def _actor(member: Member) -> Actor:
        return Actor(member.did, member.role, member.organisation)

    # Message handlers -------------------------------------------------------

    async def _on_query(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        query = incoming.message
        assert isinstance(query, Query)
        decision = await self.pdp.decide(incoming.sender, query, now)
        records = tuple(self._signed_view(view, now) for view in decision.views)
        actor, trace = self._actor(incoming.sender), incoming.envelope.trace_id
        event = f"query {query.template}"
        statements = [self.audit.entry(now=now, event=event, action="R", result="allowed", actor=actor, subject=view.bsn,
                                       record=view.path, trace_id=trace, rule=decision.rule, request=incoming.data)
                      for view in decision.views]
        if query.template == "QIR-0001-ZKi" and decision.views:
            # CIZ learns who is, was or becomes responsible: they get GEWIJZIGDE/VERWIJDERDE notifications.
            statements.append(("INSERT OR IGNORE INTO responsible (wlzIndicatieID, uzovi) VALUES (?, ?)",
                               (query.params["wlzIndicatieID"], query.params["uzovi"]), False))
        if not decision.views:
            statements.append(self.audit.entry(now=now, event=event, action="R", result="empty", actor=actor,
                                               subject=query.params.get("bsn"), trace_id=trace, rule=decision.rule,
                                               request=incoming.data))
        self.metrics.count_decision(decision.rule, "allowed" if decision.views else "empty")
        return QueryResult(records=records), statements

    def _signed_view(self, view: View, now: int) -> bytes:
        if view.unchanged:
            return view.source.signed
        record = RecordVersion(view.kind, view.record_id, view.version, self.identity.did, now, view.deleted, view.data)
        return self.registers.signer.sign(record)

    async def _on_access_log(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        request = incoming.message
        assert isinstance(request, AccessLogRequest)
        rule = self.pdp.matrix["access_log"]["rule"]
        if incoming.sender.role != "client" or not self.pdp.is_client(incoming.sender, request.bsn):
            raise Denied(rule, "only the client himself may read the access log about his BSN")
        entries = await self.audit.entries(subject=request.bsn, limit=10_000)
        since = [e.public(with_subject=False) for e in entries if e.at >= utc(request.since)]
        statements = [self.audit.entry(now=now, event="access-log", action="R", result="allowed",
                                       actor=self._actor(incoming.sender), subject=request.bsn,
                                       trace_id=incoming.envelope.trace_id, rule=rule, request=incoming.data)]
        return AccessLogResult(entries=tuple(since)), statements

    async def _on_melding(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        melding = incoming.message
        assert isinstance(melding, Melding)
        kind, _, record_id = melding.record.partition("/")
        if kind not in RECORD_TYPES and kind != "Bemiddelingspecificatie":
            raise RemoteProtocolError(ErrorCode.NOT_FOUND, "no such record type here")
        existing = await self.store.fetchone("SELECT 1 FROM meldingen WHERE melding_id = ?", (melding.melding_id,))
        if existing:
            return Ack(ref=melding.melding_id, status="duplicate"), []
        statements: list[Statement] = [
            ("INSERT OR IGNORE INTO meldingen (melding_id, received_at, sender_did, sender_org, rule, record, description, status) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, 'open')",
             (melding.melding_id, now, incoming.sender.did, incoming.sender.organisation, melding.rule, melding.record,
              melding.description), False),
            self.audit.entry(now=now, event="melding", action="C", result="received", actor=self._actor(incoming.sender),
                             record=melding.record, trace_id=incoming.envelope.trace_id, rule=melding.rule,
                             request=incoming.data),
        ]
        return Ack(ref=melding.melding_id, status="accepted"), statements

    async def _on_revocation_news(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        news = incoming.message
        assert isinstance(news, RevocationNews)
        adopted = sum(1 for data in news.lists[:8] if self.adopt_revocation_list(data))
        gone, statements = self.peers.prune(now=now, trust=self.trust)
        self.gossiper.forget(gone)
        return Ack(ref=f"{adopted} adopted", status="accepted" if adopted else "duplicate"), statements

    def adopt_revocation_list(self, data: bytes) -> bool:
        try:
            newer = self.trust.apply_revocation_list(data)
        except KeysError as exc:
            log.info("ignored a revocation list (%s)", exc.code)
            return False
        if newer:
            self.home.store_revocation_list(data)
        return newer

    async def _on_announcement(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        statement = self.peers.accept(incoming, source="push", now=now)
        if statement is not None:
            self.gossiper.learned(incoming)
            await self.outbox.peer_back(incoming.sender.did, dict(incoming.sender.identifiers))
        return Ack(ref=incoming.envelope.sender, status="accepted" if statement else "duplicate"), [statement] if statement else []

    async def _on_notification(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        return await self.inbox.receive(incoming, now), []

    async def _on_subscribe(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        return await self.subscriptions.subscribe(incoming, now)

    async def _on_unsubscribe(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        return await self.subscriptions.unsubscribe(incoming, now)

    async def _on_peer_exchange(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        return await self.gossiper.answer(incoming), []

    # Evidence confirmation ----------------------------------------------------

    async def _confirm_evidence(self, record: RecordVersion, signer: Member) -> bool:
        """Ask the evidence's source whether this version is still current."""
        peer = self.peers.get(signer.did)
        if peer is None:
            log.info("cannot confirm evidence: its source is not in the peer table")
            return False
        query = Query(template="RECORD-STATUS", params={"kind": record.kind, "id": record.record_id}, evidence=(), history=False)
        try:
            reply = await self.client.request(peer.url, query, to=peer.did)
        except NodeError as exc:
            log.info("cannot confirm evidence with its source: %s", exc.__class__.__name__)
            return False
        result = reply.message
        if not isinstance(result, QueryResult) or len(result.records) != 1:
            return False
        try:
            status, source = verify_record(result.records[0], self.trust, self.now())
        except RemoteProtocolError:
            return False
        data = status.data or {}
        return source.did == signer.did and data.get("version") == record.version and data.get("deleted") is False

    # Used by the admin API and the CLI ----------------------------------------

    async def query_peer(self, target: str, template: str, params: dict[str, str], evidence: list[bytes],
                         history: bool = False) -> list[tuple[RecordVersion, Member, bytes]]:
        url, did = await self.peer_for(target)
        query = Query(template=template, params=params, evidence=tuple(evidence), history=history)
        reply = await self.client.request(url, query, to=did)
        assert isinstance(reply.message, QueryResult)
        out = []
        for data in reply.message.records:
            try:
                record, source = verify_record(data, self.trust, self.now())
            except RemoteProtocolError as exc:
                raise NetworkError(f"a record from {did} does not verify ({exc.code})") from exc
            if source.did != did:
                raise NetworkError("a record in the reply was not signed by the node asked")
            out.append((record, source, data))
        return out


    async def send_to_peer(self, target: str, message: Message) -> Incoming:
        url, did = await self.peer_for(target)
        return await self.client.request(url, message, to=did)

    async def access_log(self, target: str, bsn: str, since: int = 0) -> list[dict[str, Any]]:
        url, did = await self.peer_for(target)
        reply = await self.client.request(url, AccessLogRequest(bsn=bsn, since=since), to=did)
        assert isinstance(reply.message, AccessLogResult)
        return [dict(e) for e in reply.message.entries]


__all__ = ["Node", "PeerRefused"]
