"""Gossip between nodes: signed announcements and revocation lists spread without a directory.

Every ``interval`` a node runs an exchange (docs/PROTOCOL.md §4.1) with
``fanout`` random peers it knows, at most one of them a bootstrap peer:
bucket fingerprints first, then digests of the buckets that differ, then
only the announcements one side lacks. New announcements are also pushed
along as rumors for a few rounds. Everything that arrives is verified before
it enters the peer table; revocation lists go the same way, and a node that
adopts a newer list drops the revoked members at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING

from node.errors import NodeError
from protocol import DigestEntry, Incoming, PeerExchange, PeerExchangeResult, RevocationNews
from protocol.gossip import GossipTable, Known

if TYPE_CHECKING:
    from node.service import Node

log = logging.getLogger(__name__)

PER_EXCHANGE = 64
PER_ROUND_BYTES = 400_000
DIGEST_BUCKETS = 16
RUMOR_ROUNDS = 1
RUMORS = 64


class Gossiper:
    def __init__(self, node: Node, *, interval: float, fanout: int = 3) -> None:
        self.node = node
        self.interval = interval
        self.fanout = fanout
        self.table = GossipTable()
        self.rumors: dict[str, int] = {}
        self.budget = PER_ROUND_BYTES
        self.bootstrap_dids: set[str] = set()
        self.rounds = 0

    def own(self, data: bytes, seq: int, expires: int) -> None:
        """Our own (re-signed) announcement: in the table, and pushed as a rumor."""
        self.table.offer(Known(self.node.identity.did, seq, expires, data))
        self.rumors[self.node.identity.did] = RUMOR_ROUNDS

    def learned(self, incoming: Incoming) -> None:
        """A verified announcement entered the peer table: gossip it on."""
        env = incoming.envelope
        if self.table.offer(Known(env.sender, incoming.message.seq, env.expires, incoming.data)):  # type: ignore[attr-defined]
            self.rumors[env.sender] = RUMOR_ROUNDS

    def forget(self, dids: list[str]) -> None:
        for did in dids:
            self.table.remove(did)
            self.rumors.pop(did, None)

    # Rounds -------------------------------------------------------------

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval * random.uniform(0.8, 1.2))
            try:
                await self.round()
            except NodeError as exc:
                log.info("gossip round failed: %s", exc.__class__.__name__)

    async def round(self) -> None:
        self.rounds += 1
        self.budget = PER_ROUND_BYTES
        await self.node.maintain_peers()
        peers = self._choose()
        pushes = [self.table.entries[d].data for d in list(self.rumors)[:RUMORS] if d in self.table]
        self.rumors = {d: left - 1 for d, left in self.rumors.items() if left > 1}
        await asyncio.gather(*(self._exchange(did, pushes) for did in peers), return_exceptions=False)

    def _choose(self) -> list[str]:
        """Random known peers; a bootstrap peer only while too few others are known (it would be asked by all)."""
        me = self.node.identity.did
        known = [p.did for p in self.node.peers.all() if p.did != me]
        others = [d for d in known if d not in self.bootstrap_dids]
        chosen = random.sample(others, min(self.fanout, len(others)))
        boot = [d for d in self.bootstrap_dids if d in known and d != me]
        if boot and len(chosen) < self.fanout:
            chosen.append(random.choice(boot))
        return chosen

    async def _exchange(self, did: str, pushes: list[bytes]) -> None:
        peer = self.node.peers.get(did)
        if peer is None:
            return
        client = self.node.client
        versions = self._versions()
        try:
            first = PeerExchange(summary=self.table.summary(), digest=(), want=(), announcements=tuple(pushes), revocations=versions)
            reply = (await client.request(peer.url, first, to=did)).message
            assert isinstance(reply, PeerExchangeResult)
            await self._after_versions(did, peer.url, reply.revocations)
            if not reply.digest or reply.summary is None:
                return
            buckets = self.table.differing(reply.summary)
            they_lack, i_want = self.table.compare([(e.id, e.seq) for e in reply.digest], buckets)
            if not they_lack and not i_want:
                return
            random.shuffle(they_lack)
            second = PeerExchange(summary=None, digest=(), want=tuple(i_want[:PER_EXCHANGE]),
                                  announcements=self._take(they_lack), revocations={})
            answer = (await client.request(peer.url, second, to=did)).message
            assert isinstance(answer, PeerExchangeResult)
            await self.node.absorb_announcements(answer.announcements, source="gossip")
        except NodeError as exc:
            log.info("gossip with %s failed: %s", did[-8:], exc)

    # Answering ----------------------------------------------------------

    async def answer(self, incoming: Incoming) -> PeerExchangeResult:
        request = incoming.message
        assert isinstance(request, PeerExchange)
        await self.node.absorb_announcements(request.announcements, source="gossip")
        self._push_newer_lists(incoming.envelope.sender, request.revocations)
        if request.summary is not None:
            buckets = self.table.differing(request.summary)
            random.shuffle(buckets)
            digest: tuple[DigestEntry, ...] = ()
            if buckets and self.budget > 0:
                digest = tuple(DigestEntry(id=d, seq=s) for d, s in self.table.digest(buckets[:DIGEST_BUCKETS]))
                self.budget -= 16 * len(digest)
            return PeerExchangeResult(summary=self.table.summary(), digest=digest, want=(), announcements=(),
                                      revocations=self._versions())
        wanted = self.table.resolve(request.want)
        return PeerExchangeResult(summary=None, digest=(), want=(), announcements=self._take(wanted), revocations={})

    def _take(self, dids: list[str]) -> tuple[bytes, ...]:
        taken, self.budget = self.table.take(dids, limit=PER_EXCHANGE, budget=self.budget)
        return taken

    # Revocation lists -----------------------------------------------------

    def _versions(self) -> dict[str, int]:
        return {r.issuer: r.version for r in self.node.trust.revocation_lists()}

    def _newer_than(self, theirs: dict[str, int]) -> tuple[bytes, ...]:
        return tuple(r.encoded for r in self.node.trust.revocation_lists() if r.version > theirs.get(r.issuer, 0))

    async def _after_versions(self, did: str, url: str, theirs: dict[str, int]) -> None:
        lists = self._newer_than(theirs)
        if lists:
            try:
                await self.node.client.request(url, RevocationNews(lists=lists), to=did)
            except NodeError as exc:
                log.info("could not hand a revocation list to %s: %s", did[-8:], exc)

    def _push_newer_lists(self, did: str, theirs: dict[str, int]) -> None:
        peer = self.node.peers.get(did)
        if peer is not None and self._newer_than(theirs):
            task = asyncio.create_task(self._after_versions(did, peer.url, theirs))
            self.node.background(task)


__all__ = ["Gossiper"]
