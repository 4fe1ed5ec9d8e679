"""Gossip between nodes: signed announcements and revocation lists spread without a directory.

Every ``interval`` the node asks protocol.gossip.Schedule whom to talk to and
runs those exchanges one after another (protocol.gossip.Exchange; the steps
are in docs/PROTOCOL.md §4.1). While fewer than ``fanout`` other peers are
known, one of them is a bootstrap peer, which gets our announcement and
answers with a small random sample. Everything that arrives is verified
before it enters the peer table; revocation lists go the same way, and a node
that adopts a newer list drops the revoked members at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

from keys import TrustStore
from node.discovery.peers import PeerTable
from node.errors import NodeError
from node.interfaces import Requester
from node.tasks import Spawn
from protocol import Incoming, PeerExchange, PeerExchangeResult, RevocationNews
from protocol.gossip import Budget, Exchange, GossipTable, Known, Planned, Schedule, answer

log = logging.getLogger(__name__)

Absorb = Callable[[tuple[bytes, ...], str], Awaitable[int]]


class Gossiper:
    """Runs gossip rounds and answers exchanges; what arrives goes to ``absorb`` to be verified."""

    def __init__(self, *, did: str, peers: PeerTable, client: Requester, trust: TrustStore, bootstrap: list[str],
                 absorb: Absorb, maintain: Callable[[], Awaitable[None]], own_announcement: Callable[[], bytes],
                 spawn: Spawn, interval: float, fanout: int = 3, private: bool = False) -> None:
        self.did = did
        self.url = ""  # ours, once the listener is up
        self.peers = peers
        self.client = client
        self.trust = trust
        self.bootstrap = bootstrap
        self.absorb = absorb
        self.maintain = maintain
        self.own_announcement = own_announcement
        self.spawn = spawn
        self.private = private  # a client's node: it learns the network, the network does not learn it
        self.interval = interval
        self.rng = random.SystemRandom()
        self.table = GossipTable()
        self.schedule = Schedule(fanout, self.rng)
        self._budget = Budget()
        self._budget_since = time.monotonic()
        self.bootstrap_dids: set[str] = set()
        self.rounds = 0

    @property
    def budget(self) -> Budget:
        """This round's budget; renewed by time too, so a node that runs no rounds of its own still answers."""
        if time.monotonic() - self._budget_since > max(self.interval, 1.0):
            self._budget, self._budget_since = self.round_budget(), time.monotonic()
        return self._budget

    def round_budget(self) -> Budget:
        """A whole round's budget, for our table and the size our peers told of."""
        return self.table.round_budget(self.schedule.network_size())

    def own(self, data: bytes, seq: int, expires: int) -> None:
        """Our own (re-signed) announcement: in the table, and offered as a rumor (not a private node's)."""
        if self.private:
            return
        if self.table.offer(Known(self.did, seq, expires, data)):
            self.schedule.heard(self.did)

    def switch_identity(self, did: str) -> None:
        """We moved to a new key: our old entry goes, the new announcement comes through own()."""
        self.table.remove(self.did)
        self.schedule.rumors.pop(self.did, None)
        self.did = did

    def learned(self, incoming: Incoming) -> None:
        """A verified announcement entered the peer table: offer it on."""
        env = incoming.envelope
        if self.table.offer(Known(env.sender, incoming.message.seq, env.expires, incoming.data)):  # type: ignore[attr-defined]
            self.schedule.heard(env.sender)

    def forget(self, dids: list[str]) -> None:
        for did in dids:
            self.table.remove(did)
            self.schedule.rumors.pop(did, None)

    # Rounds -------------------------------------------------------------

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval * self.rng.uniform(0.8, 1.2))
            try:
                await self.round()
            except NodeError as exc:
                log.info("gossip round failed: %s", exc.__class__.__name__)

    async def round(self) -> None:
        self.rounds += 1
        self._budget, self._budget_since = self.round_budget(), time.monotonic()
        await self.maintain()
        me = self.did
        plan, rumors = self.schedule.plan(self.table, me, self._bootstrap_peers() | ({me} if self.is_bootstrap else set()))
        if self.private:
            plan = self._with_bootstrap_peers_only(plan)
        # One after another, so each exchange starts from what the previous one brought.
        for planned in plan:
            await self.exchange(planned, rumors)

    def _with_bootstrap_peers_only(self, plan: list[Planned]) -> list[Planned]:
        """A client's node gossips with its bootstrap peers, which hold the whole table, while it has reached one:
        each exchange hands the peer his certificate, whose BSN commitment can be tested against a BSN one knows."""
        reached = {did for did in self._bootstrap_peers() if self.peers.get(did) is not None}
        if not reached:
            return plan
        kept = [p for p in plan if p.did in reached]
        return kept or [Planned(self.rng.choice(sorted(reached)), introduce=False)]

    def _bootstrap_urls(self) -> set[str]:
        return {u.rstrip("/") for u in self.bootstrap}

    @property
    def is_bootstrap(self) -> bool:
        """Our own URL in the bootstrap list makes us a bootstrap peer (docs/PROTOCOL.md §4.1)."""
        return bool(self.url) and self.url.rstrip("/") in self._bootstrap_urls()

    def _bootstrap_peers(self) -> set[str]:
        """The bootstrap peers we reached, and those we learned of whose URL is in our bootstrap list."""
        urls = self._bootstrap_urls()
        return self.bootstrap_dids | {p.did for p in self.peers.all() if p.url.rstrip("/") in urls}

    async def exchange(self, planned: Planned, rumors: list[str]) -> None:
        peer = self.peers.get(planned.did)
        if peer is None:
            return
        exchange = Exchange(self.table, self.budget, self.rng, rumors=[] if planned.introduce else rumors,
                            introduce=self.own_announcement() if planned.introduce and not self.private else None,
                            ask_sample=planned.introduce and self.private,
                            revocations=self._versions())
        request: PeerExchange | None = exchange.first()
        try:
            while request is not None:
                reply = (await self.client.request(peer.url, request, to=peer.did)).message
                assert isinstance(reply, PeerExchangeResult)
                await self.absorb(reply.announcements, "gossip")
                if exchange.steps == 1:
                    await self._after_versions(peer.did, peer.url, reply.revocations)
                request = exchange.next(reply)
        except NodeError as exc:
            log.info("gossip with %s failed: %s", peer.did[-8:], exc)
        self.schedule.wanted(exchange.useful)
        self.schedule.told(exchange.told)

    # Answering ----------------------------------------------------------

    async def answer(self, incoming: Incoming) -> PeerExchangeResult:
        request = incoming.message
        assert isinstance(request, PeerExchange)
        await self.absorb(request.announcements, "push" if request.sample else "gossip")
        if request.hash is not None:
            self._push_newer_lists(incoming.envelope.sender, request.revocations)
        return answer(self.table, request, asker=incoming.envelope.sender, me=self.did,
                      budget=self.budget, rng=self.rng, revocations=self._versions())

    # Revocation lists -----------------------------------------------------

    def _versions(self) -> dict[str, int]:
        return {r.issuer: r.version for r in self.trust.revocation_lists()}

    def _newer_than(self, theirs: dict[str, int]) -> tuple[bytes, ...]:
        return tuple(r.encoded for r in self.trust.revocation_lists() if r.version > theirs.get(r.issuer, 0))

    async def _after_versions(self, did: str, url: str, theirs: dict[str, int]) -> None:
        lists = self._newer_than(theirs)
        if lists:
            try:
                await self.client.request(url, RevocationNews(lists=lists), to=did)
            except NodeError as exc:
                log.info("could not hand a revocation list to %s: %s", did[-8:], exc)

    def _push_newer_lists(self, did: str, theirs: dict[str, int]) -> None:
        peer = self.peers.get(did)
        if peer is not None and self._newer_than(theirs):
            self.spawn(self._after_versions(did, peer.url, theirs), "revocation-push")


__all__ = ["Gossiper"]
