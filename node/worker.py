"""A worker process: answers signed queries on the node's port beside the process that owns writes.

Started by that process (``iwlz run --workers N``) as ``python -m node.worker SETTINGS.json``; never by hand.
It verifies, decides, reads and signs on a core of its own; its audit entries and replay ids go to the owner,
which numbers them into its chain and commits them before this worker replies; every other message and path
is passed on to the owner as received. It stops when told (SIGTERM) or when the owner is gone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from keys import KeysError
from node.client import MESSAGES_PATH, PeerClient
from node.clock import ClockWatch
from node.discovery import PeerTable, Router
from node.errors import NodeError
from node.home import NodeConfig, NodeHome
from node.metrics import Metrics
from node.policy import PolicyDecisionPoint
from node.relay import PrimaryLink
from node.relay.supervisor import READY
from node.server import Dispatcher, MessageDesk, QueryHandlers
from node.server.connections import Listener
from node.store import AuditLog, AuthorityLinks, Registers
from node.store.changes import ChangeCount
from node.store.relayed import RelayedStore
from node.tasks import Background, event_loop_runner, start_or_undo, tune_collector
from node.tls import client_context, server_context
from protocol import Endpoint, Queries, Query, ReplayGuard

log = logging.getLogger("node.worker")
SERVED_BY = "Iwlz-Served-By"
PEERS_EVERY = 10.0  # seconds between reloads of the peer table the owner keeps


class QueryWorker:
    def __init__(self, home: NodeHome, config: NodeConfig, *, host: str, port: int, socket_path: str,
                 changes_path: str, index: int = 1) -> None:
        self.home, self.config, self.host, self.port, self.index = home, config, host, port, index
        self.changes_path = changes_path
        self.link = PrimaryLink(socket_path, body_timeout=config.header_timeout)
        self.tasks = Background()
        self.metrics = Metrics(tally=True)
        self.clock = time.time

    async def start(self) -> None:
        await start_or_undo(self._start, self.stop)

    async def _start(self) -> None:
        home, config = self.home, self.config
        tls = server_context(home.path, config.tls_cert, config.tls_key)
        self.identity, self.certificate, self.trust = home.identity(), home.certificate(), home.trust_store()
        member = self.trust.verify_certificate(self.certificate, int(self.clock()))
        self.store = RelayedStore(home.database_path, self.link.hand_over)
        await self.store.open()
        self.endpoint = Endpoint(self.identity, self.certificate, self.trust, ReplayGuard())
        self.audit = AuditLog(self.store, self.identity)  # makes entries; the owner numbers them into its chain
        # Versions and steps of authority are kept while the owner's change count stays put.
        self.changes = ChangeCount(Path(self.changes_path), writer=False)
        self.registers = Registers(self.store, self.identity, self.certificate, member.role, self.audit,
                                   retention=config.retention, changes=self.changes.value)
        await self.registers.load()
        self.peers = PeerTable(self.store, self.identity.did)
        await self.peers.load()
        watch = ClockWatch(self.clock)
        self.client = PeerClient(self.endpoint, clock=self.clock, watch=watch, tls=client_context(home.path, config.tls_ca))
        self.router = Router(peers=self.peers, client=self.client, trust=self.trust, clock=self.clock, learn=_learn_nothing)
        identifiers = {f"{k}:{v}" for k, v in member.identifiers.items()}
        pdp = PolicyDecisionPoint(self.registers, self.trust, freshness=config.evidence_freshness,
                                  authority=AuthorityLinks(self.store, cache_size=10_000, changes=self.changes.value),
                                  confirm=self.router.record_status,
                                  source_ids=lambda: identifiers | {self.identity.did})
        self.queries = QueryHandlers(pdp=pdp, registers=self.registers, audit=self.audit, metrics=self.metrics,
                                     did=self.identity.did)
        dispatcher = Dispatcher(endpoint=self.endpoint, store=self.store, audit=self.audit, metrics=self.metrics)
        dispatcher.register({Query: self.queries.on_query, Queries: self.queries.on_queries})
        messages = MessageDesk(endpoint=self.endpoint, dispatcher=dispatcher, metrics=self.metrics, clock=self.clock,
                               watch=watch, body_timeout=config.header_timeout,
                               member_in_flight=config.member_in_flight, forward=self.link.forward)
        app = web.Application(client_max_size=self.endpoint.max_size, middlewares=[self._served_by, messages.never_500])
        app.router.add_post(MESSAGES_PATH, messages.message)
        app.router.add_route("*", "/{tail:.*}", self.link.proxy)
        self.listener = Listener(app, max_connections=config.max_connections, header_timeout=config.header_timeout,
                                 logger_name="node.http.worker")
        await self.listener.start(self.host, self.port, tls, reuse_port=True)
        self.tasks.spawn(self._follow_owner(), "follow owner")
        self.tasks.spawn(self._reload_peers(), "peer table")
        self.tasks.spawn(self._forget_old_ids(), "replay ids")
        self.tasks.spawn(self._hand_tally(), "metrics")

    @web.middleware
    async def _served_by(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Which process answered (for operators and tests; the owner's answers carry no such header)."""
        response: web.StreamResponse = await handler(request)
        response.headers[SERVED_BY] = f"worker {self.index}"
        return response

    def _read_revocation_lists(self) -> None:
        for data in self.home.revocation_lists():
            try:
                self.trust.apply_revocation_list(data)
            except KeysError as exc:
                log.info("ignored a kept revocation list (%s)", exc.code)

    def _read_identity(self) -> None:
        certificate = self.home.certificate()
        if certificate == self.certificate:
            return
        identity = self.home.identity()
        self.identity, self.certificate = identity, certificate
        self.endpoint.switch_identity(identity, certificate)
        self.registers.switch_identity(identity, certificate)
        self.audit.switch_identity(identity)
        self.peers.own_did = self.queries.did = identity.did
        log.info("took up the node's new certificate")

    async def _follow_owner(self) -> None:
        """Trust and identity as the owner holds them: read again from the home each time the owner says they
        changed (a revocation list adopted, a certificate switched), without waiting."""
        generation = 0
        while True:
            try:
                now = await self.link.changes(generation)
            except NodeError:
                await asyncio.sleep(1.0)
                continue
            if now != generation:
                generation = now
                self._read_revocation_lists()
                self._read_identity()
                await self._load_peers()

    async def _load_peers(self) -> None:
        peers = PeerTable(self.store, self.identity.did)
        await peers.load()
        self.peers = self.router.peers = peers

    async def _reload_peers(self) -> None:
        while True:
            await asyncio.sleep(PEERS_EVERY)
            try:
                await self._load_peers()
            except NodeError as exc:
                log.warning("reading the peer table failed: %s", exc.__class__.__name__)

    async def _hand_tally(self, every: float = 1.0) -> None:
        while True:
            await asyncio.sleep(every)
            tally = self.metrics.take_tally()
            if any(tally):
                try:
                    await self.link.hand_tally(tally)
                except NodeError:
                    pass  # counts lost with an owner that is gone; the node's answers are not

    async def _forget_old_ids(self) -> None:
        while True:
            await asyncio.sleep(60.0)
            self.endpoint.replay.prune(int(self.clock()))

    async def stop(self) -> None:
        await self.tasks.stop()
        # A start that failed part of the way made only some of these
        for part, closing in (("listener", "stop"), ("client", "close"), ("store", "close")):
            if (made := getattr(self, part, None)) is not None:
                await getattr(made, closing)()
        await self.link.close()
        if (changes := getattr(self, "changes", None)) is not None:
            changes.close()


async def _learn_nothing(url: str) -> Any:
    """A worker does not add peers; the owner learns them and the worker reads its table."""
    return None


def _end_with_owner() -> None:
    """Linux: the kernel sends SIGTERM when the owner dies, even by SIGKILL, so that a restarted owner finds its
    port free at once. The parent poll below covers other systems."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


async def _until_stopped_or_orphaned() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            if os.getppid() != parent:
                log.warning("the owner process is gone; this worker stops")
                return


async def serve(settings: dict[str, Any]) -> None:
    home = NodeHome(Path(settings["home"]))
    worker = QueryWorker(home, NodeConfig.from_json(settings["config"]), host=settings["host"],
                         port=int(settings["port"]), socket_path=settings["socket"],
                         changes_path=settings["changes"], index=int(settings.get("index", 1)))
    await worker.start()
    sys.stdout.buffer.write(READY + b" %d\n" % os.getpid())
    sys.stdout.flush()
    try:
        await _until_stopped_or_orphaned()
    finally:
        await worker.stop()


def main(argv: list[str]) -> int:
    _end_with_owner()
    settings = json.loads(Path(argv[0]).read_text())
    if os.getppid() != settings.get("owner_pid", os.getppid()):
        return 1  # the owner died before the line above took effect
    logging.basicConfig(level=settings.get("log_level", logging.INFO),
                        format=f"%(asctime)s %(levelname)s %(name)s[worker {settings.get('index', 0)}]: %(message)s")
    tune_collector()
    try:
        with event_loop_runner(settings.get("event_loop", "auto")) as runner:
            runner.run(serve(settings))
    except (NodeError, KeysError) as exc:
        log.error("the worker cannot run: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
