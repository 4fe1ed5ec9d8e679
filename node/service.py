"""The composition root: builds a node's parts, wires them with narrow interfaces, starts and stops them.

The parts (docs/ARCHITECTURE.md): store/ (SQLite, registers, audit),
policy/ (the matrix and the decision point), discovery/ (peer table,
announcements, gossip, mDNS, routing), notify/ (outbox, inbox, subscriptions,
meldingen), server/ (the peer listener and dispatch), admin/ (the local admin
API and dashboard). No part imports this module; each gets what it uses.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import shutil
import socket
import ssl
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from aiohttp import web

from keys import Identity, KeysError, Member
from node.admin.api import admin_app
from node.admin.parts import AdminParts
from node.care.calendar import WorkingDays
from node.care.eigen_bijdrage import EigenBijdrageDesk
from node.care.levering import LeveringCheck
from node.care.meldingen import MeldingDesk
from node.client import PeerClient
from node.clock import ClockWatch
from node.discovery import Discovery, PeerTable, Router
from node.errors import ConfigError, NodeError, ValidationError
from node.home import NodeConfig, NodeHome, open_private
from node.metrics import Metrics
from node.notify import Inbox, MeldingenSent, Outbox, Subscriptions
from node.notify.consents import ConsentsReceived
from node.overview import ClientView
from node.policy import PolicyDecisionPoint
from node.relay import WriterDesk, Workers
from node.relay.supervisor import private_dir, worker_command
from node.server import Dispatcher, MessageDesk, PeerApp, QueryHandlers, load_replay_guard
from node.server.connections import Listener
from node.store.changes import CHANGES, ChangeCount
from node.store.preparing import Preparer
from node.store import Actor, AuditLog, AuthorityLinks, HeldEvidence, Registers, Statement, Store, Users, registers_for
from node.tasks import Background, Housekeeping, start_or_undo, usable_cores
from node.tls import client_context, server_context
from node.witness import Witnessing
from protocol import Endpoint, LocalProtocolError, Message
from protocol.events import EVENT_RULES
from protocol.messages import check_url

log = logging.getLogger(__name__)


class Node:
    def __init__(self, home: NodeHome, *, host: str | None = None, port: int | None = None,
                 admin_port: int | None = None, public_url: str | None = None, bootstrap: list[str] | None = None,
                 clock: Callable[[], float] = time.time, gossip_interval: float | None = None,
                 mdns: bool | None = None, mdns_interfaces: list[str] | None = None,
                 config: NodeConfig | None = None, workers: int = 1, event_loop: str = "auto") -> None:
        self.home = home
        self.config = config = config or home.config()
        self.host = host or config.host
        self.port = config.port if port is None else port
        self.admin_port = config.admin_port if admin_port is None else admin_port
        self.public_url = public_url or config.public_url
        if self.public_url is not None:
            _check_public_url(self.public_url)
        self.bootstrap = list(bootstrap if bootstrap is not None else config.bootstrap)
        self.clock = clock
        self.gossip_interval = gossip_interval if gossip_interval is not None else config.gossip_interval
        self.mdns_enabled = config.mdns if mdns is None else mdns
        self.mdns_interfaces = mdns_interfaces if mdns_interfaces is not None else config.mdns_interfaces
        self.mdns: Any = None
        self.metrics = Metrics()
        self.ready = False
        self.url = self.admin_url = ""
        self.tasks = Background()
        self._listeners: list[Listener] = []
        self.worker_count, self.event_loop = max(1, workers), event_loop
        self.workers: Workers | None = None
        self.writer_desk: WriterDesk | None = None
        self._private_dir: str | None = None
        self._port_holder: socket.socket | None = None

    def now(self) -> int:
        return int(self.clock())

    def _follow_clock(self) -> float:
        """The clock the parts are given: the node's, also when a test moves it."""
        return self.clock()

    @property
    def _tasks(self) -> list[Any]:
        return self.tasks.tasks

    # Building ------------------------------------------------------------------

    async def start(self) -> None:
        await start_or_undo(self._start, self.stop)

    async def _start(self) -> None:
        config, spawn = self.config, self.tasks.spawn
        clock = self._follow_clock
        # TLS files first: a wrong one stops the node before it opens anything.
        self.tls = server_context(self.home.path, config.tls_cert, config.tls_key)
        client_tls = client_context(self.home.path, config.tls_ca)
        self.home.finish_switch()  # a new key certified while the node was down (or a switch cut short)
        self.identity, self.certificate, self.trust = self.home.identity(), self.home.certificate(), self.home.trust_store()
        try:
            self.member = self.trust.verify_certificate(self.certificate, self.now())
        except KeysError as exc:
            # Expired, revoked or of a form no longer valid: a new one is the way out (not a clock or a trusted root).
            remedy = ("" if exc.code in ("not-yet-valid", "unknown-issuer") else
                      f"; the network root issues a new one (iwlz cert issue --network DIR {self.home.path})")
            raise ConfigError(f"this node's own certificate is not valid ({exc.code}): {exc.reason}{remedy}") from exc
        self.actor = Actor.of(self.member)
        self.store = Store(self.home.database_path, synchronous=config.synchronous)
        await self.store.open()
        self.endpoint = Endpoint(self.identity, self.certificate, self.trust, await load_replay_guard(self.store, self.now()))
        self.audit = AuditLog(self.store, self.identity)
        await self.audit.load()
        self.users = Users(self.store)
        await self.users.load()
        self.registers = Registers(self.store, self.identity, self.certificate, self.member.role, self.audit,
                                   retention=config.retention, preparer=Preparer(use_process=usable_cores() > 1))
        await self.registers.load()
        self.peers = PeerTable(self.store, self.identity.did)
        await self.peers.load()
        self.clock_watch = ClockWatch(clock)
        own_bsn, bsn_key = config.identifiers.get("bsn"), self.home.bsn_key()
        self.client = PeerClient(self.endpoint, clock=clock, watch=self.clock_watch, tls=client_tls,
                                 own_bsn=(own_bsn, bsn_key) if own_bsn is not None and bsn_key is not None else None)
        self.discovery = Discovery(
            endpoint=self.endpoint, client=self.client, peers=self.peers, store=self.store, trust=self.trust,
            member=self.member, bootstrap=self.bootstrap, lifetime=config.announcement_lifetime,
            gossiper_settings={"interval": self.gossip_interval, "fanout": config.gossip_fanout, "spawn": spawn,
                               "private": self.member.role == "client"},
            templates=[], registers=registers_for(self.member.role),
            events=tuple(sorted(e for e, rule in EVENT_RULES.items() if rule.sender_role == self.member.role)),
            keep_revocation_list=self.home.store_revocation_list, clock=clock)
        self.gossiper = self.discovery.gossiper
        self.router = Router(peers=self.peers, client=self.client, trust=self.trust, clock=clock,
                             learn=lambda url: self.discovery.learn(url, source="manual"))
        self.pdp = PolicyDecisionPoint(self.registers, self.trust, authority=AuthorityLinks(self.store, cache_size=10_000),
                                       freshness=config.evidence_freshness,
                                       confirm=self.router.record_status, source_ids=self._source_ids)
        self.discovery.templates = self.pdp.templates()
        self.subscriptions = Subscriptions(store=self.store, audit=self.audit, role=self.member.role,
                                           matrix=self.pdp.matrix["subscriptions"], parties=self.pdp.parties,
                                           is_client=self.pdp.is_client,
                                           # What a subscription opens lasts: his node is asked whether it stands.
                                           machtiging_for=functools.partial(self.pdp.machtiging_for, confirmed=True),
                                           stands=self.pdp.machtiging_stands,
                                           is_revoked=self.trust.is_revoked)
        self.outbox = Outbox(store=self.store, audit=self.audit, member=self.member, peers=self.peers, client=self.client,
                             metrics=self.metrics, parties=self.pdp.all_parties, subscribers=self.subscriptions.planned_for,
                             spawn=spawn, first_delay=config.outbox_first_delay, max_delay=config.outbox_max_delay,
                             probe_max_delay=config.outbox_probe_max_delay,
                             dead_after=config.outbox_dead_after)
        self.discovery.peer_back = self.outbox.peer_back
        self.discovery.on_revoked = self._revoked
        self.discovery.on_superseded = self._superseded
        self.registers.notifier, self.registers.on_written = self.outbox.statements_for, self.outbox.wake
        self.meldingen_sent = MeldingenSent(store=self.store, audit=self.audit, outbox=self.outbox, peers=self.peers,
                                            peer_for=self.router.peer_for, me=lambda: self.member, own_url=lambda: self.url)
        self.melding_desk = MeldingDesk(registers=self.registers, check_reporter=self.pdp.check_reporter,
                                        calendar=WorkingDays(config.holidays), actor=lambda: self.actor, clock=clock)
        self.inbox = Inbox(store=self.store, audit=self.audit, member=self.member, spawn=spawn,
                           fetch=self.router.query_with_evidence, fetch_many=self.router.query_many, fetch_back=config.inbox_fetch, trust=self.trust,
                           current_member=self._current_member,
                           effects={"VERWIJDERDE_TOESTEMMING_BRON": ConsentsReceived.withdrawn,
                                    "VERWIJDERDE_TOESTEMMING_ONTVANGER": ConsentsReceived.withdrawn},
                           fetched=[*self._care_desks(clock), self.meldingen_sent.answer_fetched], clock=clock)
        self.client_view = ClientView(store=self.store, peers=self.peers, router=self.router, me=lambda: self.member,
                                      bsn=own_bsn, clock=clock, registers=self.registers, actor=lambda: self.actor,
                                      bsn_key=bsn_key, url=lambda: self.url)
        self.consents_received = ConsentsReceived(store=self.store, trust=self.trust, me=lambda: self.member)
        self.witnessing = Witnessing(store=self.store, audit=self.audit, peers=self.peers, client=self.client,
                                     me=lambda: self.member, clock=clock, pin_every=self.config.witness_pin_interval,
                                     is_revoked=lambda cert_id: self.trust.is_revoked(cert_id))
        self.dispatcher = Dispatcher(endpoint=self.endpoint, store=self.store, audit=self.audit, metrics=self.metrics)
        self.queries = queries = QueryHandlers(pdp=self.pdp, registers=self.registers, audit=self.audit,
                                               metrics=self.metrics, did=self.identity.did)
        for part in (queries, self.discovery, self.inbox, self.subscriptions, self.melding_desk, self.witnessing,
                     self.consents_received):
            self.dispatcher.register(part.handlers())
        # A list taken while the node was stopped: the members it revokes leave the peer table, and what rests on a
        # certificate it revokes ends, before anything is sent (the table held them as they were at stop).
        revoked, deletes = self.peers.drop_revoked(self.trust)
        if revoked:
            log.warning("dropped %d peer(s) whose certificate a revocation list revokes", len(revoked))
        await self._revoked(revoked, deletes)
        await self._listen()
        if self.workers is not None:  # listening before anyone hears of this node
            await self.workers.start()
        await self.discovery.start(self.url)
        self._run_in_background()
        self.tasks.spawn(self._sign_again(), "re-sign")
        if self.member.role == "client":  # on another port, or a certificate renewed while it was stopped
            self.tasks.spawn(self._follow_again(), "follow-again")
        await self.inbox.resume()
        await self.melding_desk.adopt_legacy(self.store)
        if self.mdns_enabled:
            await self._start_mdns()
        self._write_run_file()
        self.ready = True
        log.info("node %s (%s) ready at %s, admin at %s", self.identity.did, self.member.role, self.url, self.admin_url)

    async def _listen(self) -> None:
        messages = MessageDesk(endpoint=self.endpoint, dispatcher=self.dispatcher, metrics=self.metrics,
                               clock=self._follow_clock, watch=self.clock_watch, body_timeout=self.config.header_timeout,
                               member_in_flight=self.config.member_in_flight)
        peer_app = PeerApp(messages=messages, matrix=self.pdp.matrix, announcement=lambda: self.discovery.announcement,
                           health=self._health, adopt_revocation_list=self.discovery.adopt_revocation_list,
                           refresh_gauges=self._refresh_gauges)
        if self.worker_count > 1:
            port = self._reserve_port()
        else:
            port = await self._serve(peer_app.app(), self.host, self.port, "peer", tls=self.tls)
        self.url = self.public_url or _url("https" if self.tls else "http", self.host, port)
        self.port = port
        if self.worker_count > 1:
            await self._serve_workers(peer_app)
        port = await self._serve(admin_app(self._admin_parts()), self.config.admin_host, self.admin_port, "admin")
        self.admin_url = _url("http", self.config.admin_host, port)
        if self.config.admin_on_network:  # only with admin_plain_http (NodeConfig.check)
            log.warning("the admin API answers on %s in plain HTTP (admin_plain_http): tokens and personal data cross "
                        "the network in the clear; for a test network only", self.config.admin_host)

    def _admin_parts(self) -> AdminParts:
        return AdminParts(
            token=self.home.admin_token(), describe=self._describe, own_bsn=self.config.identifiers.get("bsn"),
            actor=lambda: self.actor, clock=self._follow_clock, registers=self.registers, audit=self.audit, router=self.router,
            peers=self.peers, learn_from=lambda url: self.discovery.learn_from(url, source="manual"),
            outbox=self.outbox, inbox=self.inbox, subscriptions=self.subscriptions, meldingen_sent=self.meldingen_sent,
            melding_desk=self.melding_desk, purge=self.purge,
            adopt_revocation_list=self.discovery.adopt_revocation_list, reload_certificate=self.reload_certificate,
            check_witnesses=self.witnessing.check_against_witnesses, client_view=self.client_view,
            held=HeldEvidence(self.store), users=self.users)

    def _run_in_background(self) -> None:
        if self.gossip_interval > 0:
            self.tasks.spawn(self.gossiper.run(), "gossip")
        self.tasks.spawn(self.outbox.run(), "outbox")
        housekeeping = Housekeeping()
        # Every few seconds: each pass forgets a few seconds of ids, a short hold on the writer (a minute at 2,500
        # requests/s was 150,000 rows and ~83 ms)
        housekeeping.add("replay ids", 5.0, lambda: self.dispatcher.forget_old_ids(self.now()))
        housekeeping.add("inbox fetch retry", 2.0, self.inbox.retry_failed)
        housekeeping.add("notifications that wait too long", 3600.0, lambda: self.outbox.end_waiting(self.now()))
        housekeeping.add("held evidence", self.config.evidence_refresh_interval,
                         lambda: self.inbox.refresh_evidence(now=self.now(), margin=self.config.evidence_refresh_margin))
        housekeeping.add("audit witnesses", self.config.witness_interval, self.witnessing.hand_head)
        housekeeping.add("machtigingen followed by", self.config.evidence_freshness,
                         lambda: self.subscriptions.ask_after_machtigingen(self.now()))
        housekeeping.add("subscriptions of ended certificates", 3600.0, self.end_subscriptions_of_ended_certificates)
        housekeeping.add("certificate files", self.config.certificate_check_interval, self._check_certificate_files)
        if self.member.role == "client":  # a consent whose party was away when it was given, or signed again
            housekeeping.add("consents handed again", 3600.0, self._hand_consents_again)
        # Soon after start too: a node restarted more often than the interval would otherwise never purge.
        housekeeping.add("retention", self.config.retention_interval, self.purge,
                         first=min(60.0, self.config.retention_interval))
        self.tasks.spawn(housekeeping.run(), "housekeeping")
        self.tasks.spawn(self._sign_in_background(), "record signer")

    async def _sign_in_background(self, every: float = 2.0) -> None:
        """Versions an import stored unsigned are signed within seconds to minutes, in batches between requests."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.registers.sign_unsigned()
            except NodeError as exc:
                log.warning("signing stored versions failed: %s", exc.__class__.__name__)

    async def _start_mdns(self) -> None:
        from node.discovery.mdns import Mdns  # zeroconf is only loaded when mDNS is on

        self.mdns = Mdns(url=self.url, did=self.identity.did, interfaces=self.mdns_interfaces,
                         announce=self.member.role != "client",
                         learn_from=lambda url, timeout: self.discovery.learn_from(url, source="mdns", timeout=timeout))
        await self.mdns.start()

    def _reserve_port(self) -> int:
        """With workers, this process does not answer peers itself (it commits for them and keeps the node's
        background work): it holds the port bound, not listening, so that the port is this node's from now on,
        and the workers listen on it (SO_REUSEPORT)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._port_holder = socket.socket(family, socket.SOCK_STREAM)
        self._port_holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            self._port_holder.bind((self.host, self.port))
        except OSError as exc:
            self._port_holder.close()
            raise ConfigError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from exc
        return int(self._port_holder.getsockname()[1])

    async def _serve_workers(self, peer_app: PeerApp) -> None:
        """Every core (docs/DECISIONS.md): this process owns writes; its workers hand theirs over a Unix socket in
        a directory only this user may enter, and pass on what they do not answer."""
        self._private_dir = str(private_dir())
        socket_path = os.path.join(self._private_dir, "owner.sock")
        changes = ChangeCount(Path(self._private_dir) / "changes", writer=True)
        self.store.observe(CHANGES, changes.bump)
        self.writer_desk = WriterDesk(store=self.store, replay=self.endpoint.replay, metrics=self.metrics)
        self.discovery.on_revocation_list = self.writer_desk.changed
        app = peer_app.app()
        self.writer_desk.add_routes(app)
        listener = Listener(app, max_connections=self.config.max_connections, header_timeout=self.config.header_timeout,
                            logger_name="node.http.owner")
        await listener.start_unix(socket_path)
        self._listeners.append(listener)
        settings = {"home": str(self.home.path), "config": self.config.to_json(), "host": self.host, "port": self.port,
                    "socket": socket_path, "changes": str(changes.path), "event_loop": self.event_loop, "log_level": logging.getLogger().level,
                    "owner_pid": os.getpid()}

        def command(index: int) -> list[str]:
            path = os.path.join(self._private_dir or "", f"worker-{index}.json")
            with open_private(path) as out:
                json.dump({**settings, "index": index + 1}, out)
            return worker_command(path)

        self.workers = Workers(self.worker_count, command=command)

    async def _serve(self, app: web.Application, host: str, port: int, name: str, tls: ssl.SSLContext | None = None,
                     reuse_port: bool = False) -> int:
        listener = Listener(app, max_connections=self.config.max_connections, header_timeout=self.config.header_timeout,
                            logger_name=f"node.http.{name}")
        try:
            bound = await listener.start(host, port, tls, reuse_port=reuse_port)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        self._listeners.append(listener)
        return bound

    async def _revoked(self, dids: list[str], deletes: list[Statement]) -> None:
        """A newer revocation list: what waits for the revoked peers (``dids``) ends, and so does every subscription
        whose subscriber's certificate, or its machtiging's, is revoked, with what waits to be sent by it; in the
        transaction that ``deletes`` them from the peer table."""
        ended = await self.subscriptions.ended_by_revocation()
        await self.store.write([*deletes, *([self.outbox.stop_for(dids), self.subscriptions.forget_members(dids)] if dids else []),
                                *self._end_subscriptions(ended, "the receiver was revoked")])

    async def end_subscriptions_of_ended_certificates(self) -> int:
        """The clients' subscriptions whose certificate has ended go, with what waits to be sent by them (a
        housekeeping job). Returns how many."""
        ended = await self.subscriptions.ended_with_certificates(self.now())
        if ended:
            await self.store.write(self._end_subscriptions(ended, "the receiver's certificate ended"))
        return len(ended)

    def _end_subscriptions(self, ended: list[tuple[str, str]], why: str) -> list[Statement]:
        """Subscriptions (id, subscriber's did) that end, with what waits to be sent by them (a dead letter: ``why``)."""
        return [self.outbox.stop_subscriptions(ended, why), self.subscriptions.forget([i for i, _ in ended])]

    async def _superseded(self, pairs: list[tuple[str, str]]) -> None:
        await self.store.write(self.outbox.move_to(pairs) + self.subscriptions.move_to(pairs)
                               + await self.client_view.moved_to(pairs))

    # Renewal and key rotation, without a restart ------------------------------------

    async def reload_certificate(self) -> bool:
        """Take up a renewed certificate, or a new key (iwlz key rotate) once its certificate is in the home.

        Returns whether anything changed. The old key's file is replaced; stored versions are signed again
        under the new certificate in the background; peers hear the new announcement at once.
        """
        identity, certificate = self.home.next_identity(), None
        if identity is not None and self.home.next_certificate_path.exists():
            certificate = self.home.next_certificate_path.read_bytes()
        elif self.home.certificate() != self.certificate:
            identity, certificate = self.identity, self.home.certificate()
        if identity is None or certificate is None:
            return False
        try:
            member = self.trust.verify_certificate(certificate, self.now())
        except KeysError as exc:
            raise ConfigError(f"the new certificate is not valid ({exc.code}): {exc.reason}") from exc
        if member.did != identity.did:
            raise ConfigError("the new certificate is for another key")
        old = self.identity.did
        if self.member.role == "client" and identity.did != old:
            await self._leave_subscriptions()
        self._take_identity(identity, certificate, member)
        # The chain head is signed with the new key before the key files change, so that a crash in between
        # leaves a home whose head matches the key the node starts with (start finishes the switch).
        await self.store.write([self.audit.entry(now=self.now(), event="certificate.switch", action="U", result="ok",
                                                 actor=self.actor, rule=member.cert_id_hex)])
        self.home.finish_switch()
        if self.writer_desk is not None:
            self.writer_desk.changed()
        self.discovery.announce()
        self.tasks.spawn(self.discovery.tell_peers(), "announce-new-key")
        self.tasks.spawn(self._sign_again(), "re-sign")
        if self.member.role == "client":
            self.tasks.spawn(self._follow_again(), "follow-again")
        if self.mdns is not None:
            await self.mdns.stop()
            await self._start_mdns()
        self._write_run_file()
        log.info("switched to certificate %s%s", member.cert_id_hex, "" if old == identity.did else f" and key {identity.did}")
        return True

    async def _sign_again(self) -> None:
        """Sign again what was signed under an earlier certificate; a client's node then hands the consents he gave
        again: each holds only while the certificate in it does, and the party holding it has the one it was given."""
        await self.registers.resign_stale()
        if self.member.role == "client":
            await self._hand_consents_again()

    async def _hand_consents_again(self) -> None:
        try:
            await self.client_view.hand_again()
        except NodeError as exc:
            log.warning("could not hand the consents again: %s", exc.__class__.__name__)

    async def _leave_subscriptions(self) -> None:
        """Before a client's node moves to a new key: what it follows is ended under the old key, and followed
        again under the new one (a source kept the old did's beside the new until the old certificate ended, and
        sent each change sealed to a key no one holds)."""
        try:
            await self.client_view.leave_before_key_switch()
        except NodeError as exc:
            log.warning("could not end the subscriptions under the old key: %s", exc.__class__.__name__)

    async def _follow_again(self) -> None:
        """A client's subscriptions at sources name where his node is and rest on the certificate they were made
        under: at start and after a switch, they are made again (the same subscriptions) where it is now, on the
        certificate it holds now."""
        try:
            await self.client_view.follow_again(endpoint=self.url, allowed=self.subscriptions.matrix["allowed"])
        except NodeError as exc:
            log.warning("could not follow again: %s", exc.__class__.__name__)

    async def _check_certificate_files(self) -> None:
        try:
            await self.reload_certificate()
        except ConfigError as exc:
            log.warning("a new certificate in %s was not taken up: %s", self.home.path, exc)

    def _care_desks(self, clock: Callable[[], float]) -> list[Any]:
        """What a role does with the care it is told of: a provider's care rests on its toewijzing; the CAK keeps
        an eigen bijdrage for the care it fetches."""
        if self.member.role == "zorgaanbieder":
            self.registers.checks["Levering"] = LeveringCheck(store=self.store, trust=self.trust, me=lambda: self.member,
                                                              clock=clock)
        if self.member.role == "cak":
            return [EigenBijdrageDesk(registers=self.registers, actor=lambda: self.actor, clock=clock).levering_fetched]
        return []

    async def purge(self, today: date | None = None, dry_run: bool = False, actor: Actor | None = None) -> dict[str, Any]:
        """Retention (the housekeeping job, and iwlz purge): records past their period, notifications delivered
        or acted on longer ago than notification_retention_days, and the signed requests of audit entries older than
        audit_request_days (their hash stays). ``actor``: the person who asked, named in the audit log (else the
        node). A person may give a later ``today`` only in a dry run (what would go then); the node's own token may
        purge by another date, and its audit entries say which."""
        now = self.now()
        actual = date.fromtimestamp(now)
        actor = actor or self.actor
        if today is not None and today > actual and not dry_run and actor.user is not None:
            raise ValidationError(f"a purge removes what has passed its retention by today ({actual.isoformat()}); "
                                  "a later date only shows what would go then (dry run)")
        given_on = actual if today is not None and today != actual else None
        records = await self.registers.purge(today=today or actual, actor=actor, now=now, dry_run=dry_run,
                                             given_on=given_on)
        before = now - self.config.notification_retention_days * 24 * 3600
        notifications = await self.outbox.forget_delivered(before, dry_run=dry_run)
        notifications += await self.inbox.forget_done(before, dry_run=dry_run)
        if notifications and not dry_run:  # ids only, and many: one entry says how many went
            await self.store.write([self.audit.entry(now=now, event="notification.purge", action="D",
                                                     result=f"{notifications} removed", actor=actor)])
        requests = 0
        if self.config.audit_request_days is not None:
            requests = await self.audit.forget_requests(now - self.config.audit_request_days * 24 * 3600, dry_run=dry_run)
            if requests and not dry_run:
                await self.store.write([self.audit.entry(now=now, event="request.purge", action="U",
                                                         result=f"{requests} kept by their hash only", actor=actor)])
        if (records or notifications or requests) and not dry_run:
            log.info("retention: purged %d record(s) and %d notification(s); %d signed request(s) kept by hash only",
                     len(records), notifications, requests)
        return {"purged": len(records), "records": records, "notifications": notifications, "requests": requests,
                "dry_run": dry_run}

    def _source_ids(self) -> set[str]:
        """How a consent names this node as a source."""
        return {f"{k}:{v}" for k, v in self.member.identifiers.items()} | {self.identity.did}

    def _current_member(self, identifier: str) -> tuple[str, bytes] | None:
        name, _, value = identifier.partition(":")
        peer = self.peers.by_identifier(name, value)
        return (peer.did, peer.cert_id) if peer is not None else None

    def _take_identity(self, identity: Identity, certificate: bytes, member: Member) -> None:
        self.identity, self.certificate, self.member = identity, certificate, member
        self.actor = Actor.of(member)
        self.endpoint.switch_identity(identity, certificate)
        self.registers.switch_identity(identity, certificate)
        self.audit.switch_identity(identity)
        self.peers.own_did = self.queries.did = identity.did
        self.inbox.member = self.outbox.member = member
        self.gossiper.switch_identity(identity.did)

    # What the listeners show -----------------------------------------------------

    def _describe(self) -> dict[str, Any]:
        return {"did": self.identity.did, "role": self.member.role, "organisation": self.member.organisation,
                "url": self.url, "templates": self.pdp.templates()}

    def _health(self) -> dict[str, Any] | None:
        if not self.ready:
            return None
        offset = self.clock_watch.offset()
        return {"did": self.identity.did, "role": self.member.role,
                "clock_offset_seconds": None if offset is None else round(offset, 1)}

    async def _refresh_gauges(self) -> None:
        self.metrics.records.set(await self.registers.count())
        self.metrics.audit_entries.set(self.audit.seq)
        self.metrics.peers.set(len(self.peers))
        self.metrics.gossip_told.set(self.gossiper.schedule.network_size())
        self.metrics.gossip_budget.set(self.gossiper.round_budget().left)
        self.metrics.clock_offset.set(self.clock_watch.offset() or 0.0)
        self.metrics.meldingen_overdue.set(await self.melding_desk.overdue())
        stats = await self.outbox.stats()
        for status in ("pending", "dead"):
            self.metrics.outbox.labels(status).set(stats.get(status, 0))
        for status, count in (await self.inbox.waiting()).items():
            self.metrics.inbox.labels(status).set(count)
        row = await self.store.fetchone("SELECT max(at) FROM witness_receipts")
        self.metrics.witnessed_age.set(self.now() - int(row[0]) if row and row[0] is not None else -1)

    def _write_run_file(self) -> None:
        info = {"pid": os.getpid(), "did": self.identity.did, "url": self.url, "admin_url": self.admin_url}
        tmp = self.home.path / ".run.json.tmp"
        tmp.write_text(json.dumps(info) + "\n")
        tmp.replace(self.home.path / "run.json")

    # Stopping ------------------------------------------------------------------------

    async def stop(self) -> None:
        self.ready = False
        if self.workers is not None:
            await self.workers.stop()  # first: what they hand over is committed before the store closes
        if self.writer_desk is not None:
            self.writer_desk.close()
        if self.mdns is not None:
            await self.mdns.stop()
        await self.tasks.stop()
        for listener in reversed(self._listeners):
            await listener.stop()
        self._listeners.clear()
        # A start that failed part of the way made only some of these
        if (client := getattr(self, "client", None)) is not None:
            await client.close()
        if (registers := getattr(self, "registers", None)) is not None:
            await registers.preparer.close()
        if (store := getattr(self, "store", None)) is not None:
            await store.close()
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
        if self._port_holder is not None:
            self._port_holder.close()
        (self.home.path / "run.json").unlink(missing_ok=True)

    # Shortcuts for the CLI, the demo and tests ------------------------------------

    @property
    def announcement(self) -> bytes:
        return self.discovery.announcement

    async def learn_from(self, url: str, *, source: str) -> str | None:
        return await self.discovery.learn_from(url, source=source)

    async def absorb_announcements(self, announcements: tuple[bytes, ...] | list[bytes], *, source: str) -> int:
        return await self.discovery.absorb_announcements(announcements, source=source)

    async def maintain_peers(self) -> None:
        await self.discovery.maintain_peers()

    def adopt_revocation_list(self, data: bytes) -> bool:
        return self.discovery.adopt_revocation_list(data)

    async def peer_for(self, target: str) -> tuple[str, str]:
        return await self.router.peer_for(target)

    async def query_peer(self, target: str, template: str, params: dict[str, str], evidence: list[bytes],
                         history: bool = False) -> Any:
        return await self.router.query(target, template, params, evidence, history)

    async def send_to_peer(self, target: str, message: Message) -> Any:
        return await self.router.send(target, message)

    async def access_log(self, target: str, bsn: str, since: int = 0) -> list[dict[str, Any]]:
        return await self.router.access_log(target, bsn, since)


def _check_public_url(url: str) -> None:
    """The URL peers are told to reach this node at, checked as peers will check it when it is announced."""
    try:
        check_url(url, "public URL")
    except LocalProtocolError as exc:
        raise ConfigError(f"{exc.reason}, in printable ASCII with a host (a name in another script in its IDNA "
                          "form, xn--...), and no query, fragment or user: peers append their paths to it") from exc


def _url(scheme: str, host: str, port: int) -> str:
    """The URL of a listener on ``host`` (an IPv6 address in brackets)."""
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


__all__ = ["Node"]
