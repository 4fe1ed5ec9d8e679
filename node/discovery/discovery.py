"""Our place in the network: our signed announcement, bootstrap, the announcements and revocation lists
that arrive, and the peer table they fill.

Whatever arrives (a bootstrap URL, an mDNS hint, a gossiped announcement) is
verified before it enters the peer table; a newer revocation list drops the
members it revokes at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from keys import KeysError, Member, TrustStore, cbor, cose
from node.client import PeerClient
from node.discovery.gossip import Gossiper
from node.discovery.peers import PeerTable
from node.errors import NetworkError, NodeError
from node.interfaces import Handlers
from node.quiet import Throttled
from node.store import Statement, Store
from protocol import Ack, Announcement, Endpoint, Incoming, Message, PeerExchange, RemoteProtocolError, RevocationNews
from protocol.gossip import Known, Planned

log = logging.getLogger(__name__)

PeerBack = Callable[[str, list[tuple[str, str]]], Awaitable[None]]  # did, (identifier name, value) pairs
Revoked = Callable[[list[str], list[Statement]], Awaitable[None]]  # dids, their peer-table deletes
Superseded = Callable[[list[tuple[str, str]]], Awaitable[None]]
_SOURCES = frozenset({"ciz", "zorgkantoor", "cak"})
SPREAD = 3  # peers a node hands a newer revocation list to at once, besides gossip


class Discovery:
    def __init__(self, *, endpoint: Endpoint, client: PeerClient, peers: PeerTable, store: Store, trust: TrustStore,
                 member: Member, gossiper_settings: dict[str, Any], bootstrap: list[str], lifetime: int,
                 templates: list[str], registers: list[str], events: tuple[str, ...],
                 keep_revocation_list: Callable[[bytes], None], clock: Callable[[], float]) -> None:
        self.endpoint = endpoint
        self.client = client
        self.peers = peers
        self._ignored = Throttled(log)  # what anyone can send (a revocation list) or a member relay
        self._unreachable = Throttled(log, level=logging.WARNING)  # an address from mDNS is anyone's to give
        self.store = store
        self.trust = trust
        self.member = member
        self.bootstrap = bootstrap
        self.lifetime = lifetime
        self.templates = templates
        self.registers = registers
        self.events = events
        self.keep_revocation_list = keep_revocation_list
        self.clock = clock
        self.url = ""
        self.announcement = b""
        self.peer_back: PeerBack | None = None  # the outbox: what waits for a returning peer is due now
        self.on_revoked: Revoked | None = None  # the outbox and subscriptions: what was meant for a revoked member ends
        self.on_superseded: Superseded | None = None  # ... and what was meant for a member's old key moves to its new one
        self.on_revocation_list: Callable[[], None] | None = None  # worker processes read the kept list at once
        self.spawn = gossiper_settings["spawn"]
        self._announced_seq = 0
        self._announced_at = 0
        self._unreached: list[str] = []
        self.gossiper = Gossiper(did=endpoint.did, peers=peers, client=client, trust=trust, bootstrap=bootstrap,
                                 absorb=lambda items, source: self.absorb_announcements(items, source=source),
                                 maintain=self.maintain_peers,
                                 own_announcement=lambda: self.announcement, **gossiper_settings)
        for peer in peers.all():
            self.gossiper.table.offer(Known(peer.did, peer.seq, peer.expires, peer.announcement))

    def now(self) -> int:
        return int(self.clock())

    def handlers(self) -> Handlers:
        return {Announcement: self._on_announcement, PeerExchange: self._on_peer_exchange,
                RevocationNews: self._on_revocation_news}

    async def start(self, url: str) -> None:
        """Announce ourselves at ``url`` and introduce ourselves to a bootstrap peer."""
        self.url = self.gossiper.url = url
        self.announce()
        own = url.rstrip("/")
        self._unreached = [u for u in random.sample(self.bootstrap, len(self.bootstrap)) if u.rstrip("/") != own]
        known_before = {p.did for p in self.peers.all()}
        await self._bootstrap()
        if known_before:
            self._announce_at_start(known_before)

    # Our announcement ------------------------------------------------------

    @property
    def announced_seq(self) -> int:
        return self._announced_seq

    def announce(self) -> None:
        """Sign a fresh announcement (a higher seq replaces the old one everywhere)."""
        now = self.now()
        seq = max(now, self._announced_seq + 1)
        message = Announcement(seq=seq, endpoints=(self.url,), registers=tuple(self.registers),
                               templates=tuple(self.templates), events=self.events)
        self.announcement = self.endpoint.send(message, to="*", now=now, lifetime=self.lifetime).data
        self._announced_seq, self._announced_at = seq, now
        self.gossiper.own(self.announcement, seq, now + self.lifetime)

    def _announce_at_start(self, known: set[str]) -> None:
        """A node coming back tells the peers it knew before it stopped, sources first (CIZ, the zorgkantoren,
        CAK): they are who hold notifications for it, and the announcement makes what waits for it due at once,
        at its new address. A new node has no such peers; it introduces itself to one bootstrap peer only."""
        self.spawn(self.tell_peers(among=known, sources_first=True), "announce-at-start")

    async def tell_peers(self, limit: int = 64, *, among: set[str] | None = None, sources_first: bool = False) -> int:
        """Push our announcement to up to ``limit`` peers (those whose did is in ``among``, else all) at once: at
        start, after a key change; gossip tells the rest."""
        everyone = [p for p in self.peers.all() if among is None or p.did in among]
        first = [p for p in everyone if sources_first and p.role in _SOURCES][:limit]
        told = {p.did for p in first}
        rest = [p for p in everyone if p.did not in told]
        peers = first + self.gossiper.rng.sample(rest, min(limit - len(first), len(rest)))
        results = await asyncio.gather(*(self._push(p.url, p.did) for p in peers))
        return sum(results)

    async def _push(self, url: str, did: str) -> bool:
        try:
            await self.client.push(url, self.announcement, to=did)
        except NodeError as exc:
            log.info("could not tell %s of our new announcement: %s", did[-8:], exc.__class__.__name__)
            return False
        return True

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

    async def maintain_peers(self) -> None:
        """Re-announce at half life; drop peers whose announcement expired or who were revoked;
        try the bootstrap peers that were not reachable yet."""
        if self._unreached and (self.gossiper.is_bootstrap or not self.gossiper.bootstrap_dids):
            await self._bootstrap()
        now = self.now()
        if now - self._announced_at >= self.lifetime // 2:
            self.announce()
        gone, statements = self.peers.prune(now=now, trust=self.trust)
        if statements:
            self.gossiper.forget(gone)
            await self.store.write(statements)

    # Announcements that arrive ---------------------------------------------

    async def absorb_announcements(self, announcements: tuple[bytes, ...] | list[bytes], *, source: str) -> int:
        """Verify relayed announcements; the valid, newer ones enter the peer table."""
        statements = []
        returning: list[Member] = []
        now = self.now()
        for data in announcements:
            known = _quick_seq(data)
            if known is not None and not self.gossiper.table.is_news(*known):
                continue  # not news: spare the signature check
            try:
                incoming = self.endpoint.verify_broadcast(data, now=now)
            except RemoteProtocolError as exc:
                self._ignored.note("relayed " + exc.code.value, "dropped a relayed announcement (%s)", exc.code.value)
                continue
            statement = self.peers.accept(incoming, source=source, now=now)
            if statement is not None:
                statements.append(statement)
                self.gossiper.learned(incoming)
                returning.append(incoming.sender)
        if statements:
            await self.store.write(statements)
        await self._moved_keys()
        for member in returning:
            await self._peer_back(member)
        return len(statements)

    async def _moved_keys(self) -> None:
        """Members that moved to a new key: forget the old did, and move what waited for it."""
        pairs, statements = self.peers.take_superseded()
        if not pairs:
            return
        self.gossiper.forget([old for old, _ in pairs])
        await self.store.write(statements)
        if self.on_superseded is not None:
            await self.on_superseded(pairs)

    async def _peer_back(self, member: Member) -> None:
        if self.peer_back is not None:
            await self.peer_back(member.did, member.identifier_pairs())

    async def learn_from(self, url: str, *, source: str, timeout: float | None = None) -> str | None:
        """Fetch and verify a node's announcement at ``url``; returns its did, or None (the reason is logged)."""
        try:
            return await self.learn(url, source=source, timeout=timeout)
        except NetworkError as exc:
            self._unreachable.note("no-announcement", "no announcement from %s: %s", url, exc)
            return None

    async def learn(self, url: str, *, source: str, timeout: float | None = None) -> str:
        """As learn_from, raising NetworkError with the reason."""
        incoming = await self.client.fetch_announcement(url, timeout=timeout)
        statement = self.peers.accept(incoming, source=source, now=self.now())
        if statement is not None:
            self.gossiper.learned(incoming)
            await self.store.write([statement])
            await self._moved_keys()
            await self._peer_back(incoming.sender)
        return incoming.envelope.sender

    def adopt_revocation_list(self, data: bytes, *, came_from: str | None = None) -> bool:
        """Take a root-signed revocation list if it is newer: from this moment the revoked members' requests are
        refused and they leave the peer table; then what waits for them ends and the list is handed on at once."""
        try:
            newer = self.trust.apply_revocation_list(data)
        except KeysError as exc:
            self._ignored.note("revocation " + exc.code, "ignored a revocation list (%s)", exc.code)  # anyone may post one
            return False
        if newer:
            self.keep_revocation_list(data)
            if self.on_revocation_list is not None:
                self.on_revocation_list()
            gone, statements = self.peers.drop_revoked(self.trust)
            self.gossiper.forget(gone)
            log.info("adopted a newer revocation list: %d peer(s) dropped", len(gone))
            self.spawn(self._after_revocation(data, gone, statements, came_from), "revocation")
        return newer

    async def _after_revocation(self, data: bytes, gone: list[str], statements: list[Statement], came_from: str | None) -> None:
        if self.on_revoked is not None:  # also with no peer gone: a client, in no peer table, may be revoked
            await self.on_revoked(gone, statements)  # what waited for them ends in the transaction that drops them
        elif statements:
            await self.store.write(statements)
        others = [p for p in self.peers.all() if p.did != came_from]
        targets = self.gossiper.rng.sample(others, min(SPREAD, len(others)))
        await asyncio.gather(*(self._hand_on(p.url, p.did, data) for p in targets))

    async def _hand_on(self, url: str, did: str, data: bytes) -> None:
        try:
            await self.client.request(url, RevocationNews(lists=(data,)), to=did)
        except NodeError as exc:
            log.info("could not hand a revocation list to %s: %s", did[-8:], exc.__class__.__name__)

    # Handlers ----------------------------------------------------------------

    async def _on_announcement(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        statement = self.peers.accept(incoming, source="push", now=now)
        if statement is not None:
            self.gossiper.learned(incoming)
            await self._moved_keys()
            await self._peer_back(incoming.sender)
        return Ack(ref=incoming.envelope.sender, status="accepted" if statement else "duplicate"), [statement] if statement else []

    async def _on_peer_exchange(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        return await self.gossiper.answer(incoming), []

    async def _on_revocation_news(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        news = incoming.message
        assert isinstance(news, RevocationNews)
        adopted = sum(1 for data in news.lists[:8] if self.adopt_revocation_list(data, came_from=incoming.envelope.sender))
        return Ack(ref=f"{adopted} adopted", status="accepted" if adopted else "duplicate"), []


def _quick_seq(data: bytes) -> tuple[str, int] | None:
    """(sender, seq) read from an announcement without checking it, to skip what is not news."""
    try:
        payload = cbor.decode(cose.parse_sign1(data).payload)
        return str(payload["from"]), int(payload["body"]["seq"])
    except (KeysError, KeyError, TypeError, ValueError):
        return None  # anything odd gets the full check


__all__ = ["Discovery"]
