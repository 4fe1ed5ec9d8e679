"""Discovery with real nodes on 127.0.0.1: bootstrap chains converge by gossip, forged
announcements never enter a peer table, and a revoked member disappears everywhere."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from bench.discovery import free_ports
from keys import cbor, cose
from node.home import NetworkDir, NodeHome
from node.service import Node
from protocol import Announcement, PeerExchange
from tests.helpers import Network as KeyNetwork
from tests.helpers import seeded

pytestmark = pytest.mark.asyncio


class Chain:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.net = NetworkDir.create(root / "net", "discovery")
        self.nodes: list[Node] = []

    async def add(self, name: str, *, bootstrap: list[str], interval: float = 0.1, port: int | None = None) -> Node:
        home = NodeHome.create(self.root / name, role="zorgaanbieder", name=f"Aanbieder {name}",
                               identifiers={"agb": f"{10_000_000 + len(self.nodes):08d}"}, region="5151")
        self.net.issue(home, now=int(time.time()), days=2)
        node = Node(home, bootstrap=bootstrap, gossip_interval=interval, mdns=False, port=port)
        await node.start()
        self.nodes.append(node)
        return node

    async def star(self, prefix: str, count: int) -> list[Node]:
        """``count`` nodes that all bootstrap from the first, once every one knows every other."""
        first = await self.add(f"{prefix}0", bootstrap=[])
        for i in range(1, count):
            await self.add(f"{prefix}{i}", bootstrap=[first.url])
        await until(lambda: knows_everyone(self.nodes))
        return self.nodes

    async def stop(self) -> None:
        for node in self.nodes:
            await node.stop()


@pytest_asyncio.fixture
async def chain(tmp_path: Path) -> AsyncIterator[Chain]:
    c = Chain(tmp_path)
    yield c
    await c.stop()


async def until(condition, timeout: float = 20.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def knows_everyone(nodes: list[Node]) -> bool:
    return all(len(n.peers) == len(nodes) - 1 for n in nodes)


async def test_a_chain_of_bootstraps_converges(chain: Chain) -> None:
    previous: list[str] = []
    for i in range(8):
        node = await chain.add(f"n{i}", bootstrap=previous)
        previous = [node.url]
    # Each node was told only of its predecessor (and introduced itself to it); the rest is gossip.
    await until(lambda: knows_everyone(chain.nodes))
    dids = {n.identity.did for n in chain.nodes}
    for node in chain.nodes:
        assert {p.did for p in node.peers.all()} == dids - {node.identity.did}
        assert all(p.url.startswith("http://127.0.0.1:") for p in node.peers.all())
    sources = {p.source for n in chain.nodes for p in n.peers.all()}
    assert "gossip" in sources


async def test_routing_by_register_and_identifier(tmp_path: Path) -> None:
    from tests.node.kit import Network

    network = Network(tmp_path)
    try:
        ciz, zk, za = await network.start("ciz", "zk5151", "za_a")
        assert (await za.peer_for("register:indicatie"))[1] == ciz.identity.did
        assert (await ciz.peer_for("uzovi:5151"))[1] == zk.identity.did
        assert (await ciz.peer_for("register:bemiddeling"))[1] == zk.identity.did
        announced = za.peers.get(ciz.identity.did)
        assert "QIR-0002-ZA" in announced.templates and "NIEUWE_INDICATIE_ZORGKANTOOR" in announced.events
    finally:
        await network.stop()


def forge(data: bytes, **body_changes: object) -> bytes:
    """Change an announcement's body but keep its signature (what a relay without the key can do)."""
    sign1 = cose.parse_sign1(data)
    payload = cbor.decode(sign1.payload)
    payload["body"].update(body_changes)
    return cbor.encode(cbor.Tag(18, [sign1.protected_bytes, {}, cbor.encode(payload), sign1.signature]))


async def test_forged_announcements_never_enter_the_peer_table(chain: Chain) -> None:
    a = await chain.add("a", bootstrap=[], interval=0)
    b = await chain.add("b", bootstrap=[], interval=0)
    c = await chain.add("c", bootstrap=[], interval=0)
    genuine = b.announcement
    ann = Announcement(seq=int(time.time()) + 5, endpoints=("http://127.0.0.1:1/",), registers=(), templates=(), events=())
    # Re-signed by the relay c, but claiming to be b.
    sign1 = cose.parse_sign1(genuine)
    payload = cbor.decode(sign1.payload)
    payload["body"]["endpoints"] = ["http://127.0.0.1:1/"]
    relay_signed = cose.sign1(c.identity, cbor.encode(payload), {k: v for k, v in sign1.protected.items() if k != 1})
    # A member of another network.
    stranger = KeyNetwork(root=seeded(9)).endpoint(seeded(10), "zorgaanbieder", identifiers={"agb": "55555555"}, region="5151")
    foreign = stranger.send(ann, to="*", now=int(time.time()), lifetime=3600).data
    # A revoked member.
    revoked_home = NodeHome.create(chain.root / "r", role="ciz", name="Revoked", identifiers={"kvk": "62253778"}, region=None)
    member = chain.net.issue(revoked_home, now=int(time.time()), days=1)
    _, rlist = chain.net.revoke([member.cert_id_hex], now=int(time.time()))
    assert a.adopt_revocation_list(rlist)
    from protocol import Endpoint

    revoked = Endpoint(revoked_home.identity(), revoked_home.certificate(), revoked_home.trust_store())
    revoked_ann = revoked.send(ann, to="*", now=int(time.time()), lifetime=3600).data

    forgeries = [forge(genuine, endpoints=["http://127.0.0.1:1/"]), relay_signed, foreign, revoked_ann]
    # Straight in, and through a gossip exchange relayed by c.
    assert await a.absorb_announcements(forgeries, source="gossip") == 0
    exchange = PeerExchange(hash=None, summary=None, digest=(), buckets=(), want=(), announcements=tuple(forgeries), sample=0,
                            revocations={})
    await c.client.request(a.url, exchange, to=a.identity.did)
    assert [p.did for p in a.peers.all()] == []
    # The genuine one is accepted.
    assert await a.absorb_announcements([genuine], source="gossip") == 1
    assert [p.url for p in a.peers.all()] == [b.url]


async def test_a_revoked_member_disappears_from_every_peer_table(chain: Chain) -> None:
    first, *_, victim = await chain.star("m", 5)
    _, rlist = chain.net.revoke([victim.member.cert_id_hex], now=int(time.time()))
    assert first.adopt_revocation_list(rlist)  # one node hears of it; gossip does the rest
    others = chain.nodes[:-1]
    await until(lambda: all(n.peers.get(victim.identity.did) is None for n in others))
    assert all(n.trust.is_revoked(victim.member.cert_id) for n in others)
    assert all(n.trust.revocation_version(chain.net.root_did()) == 1 for n in others)
    # and it stays out: its own gossip is refused now
    await asyncio.sleep(0.5)
    assert all(n.peers.get(victim.identity.did) is None for n in others)


async def test_an_announcement_that_is_not_renewed_ages_out(chain: Chain) -> None:
    a = await chain.add("a", bootstrap=[], interval=0)
    b = await chain.add("b", bootstrap=[a.url], interval=0)
    assert b.peers.get(a.identity.did) is not None
    b.clock = lambda: time.time() + 2 * 24 * 3600  # two days later, a has not announced again
    await b.maintain_peers()
    assert b.peers.get(a.identity.did) is None
    rows = await b.store.fetchall("SELECT did FROM peers")
    assert [r[0] for r in rows] == []


async def test_a_member_whose_certificate_ends_leaves_the_peer_table_when_it_ends(chain: Chain) -> None:
    """An announcement lasts a day, and a peer stayed that long after its certificate ended: a party that left the
    network (not renewed) was still sent notifications, sealed to its key, for up to a day. A peer's entry now ends
    with whichever ends first."""
    a = await chain.add("a", bootstrap=[], interval=0)
    chain.net.issue(a.home, now=int(time.time()), valid_for=2 * 3600)  # its last certificate: two hours
    assert await a.reload_certificate()
    b = await chain.add("b", bootstrap=[a.url], interval=0)
    assert b.peers.get(a.identity.did) is not None
    b.clock = lambda: time.time() + 3 * 3600  # its announcement runs a day; its certificate has ended
    await b.maintain_peers()
    assert b.peers.get(a.identity.did) is None
    assert await b.store.fetchall("SELECT did FROM peers") == []


async def test_a_newcomer_gets_a_sample_from_its_bootstrap_peer(chain: Chain) -> None:
    hub = await chain.add("hub", bootstrap=[], interval=0)
    early = [await chain.add(f"e{i}", bootstrap=[hub.url], interval=0) for i in range(3)]
    late = await chain.add("late", bootstrap=[hub.url], interval=0)
    # No gossip round ran: the hub learned everyone from their introductions...
    assert {p.did for p in hub.peers.all()} == {n.identity.did for n in early + [late]}
    # ...and the latecomer learned two of the others from the hub's sample, verified.
    others = {p.did for p in late.peers.all()} - {hub.identity.did}
    assert len(others) == 2 and others <= {n.identity.did for n in early}
    assert {late.peers.get(d).source for d in others} == {"gossip"}
    # The hub's answer said how large its table is: the latecomer's next round budgets for that network,
    # not for the three announcements it holds.
    assert len(hub.gossiper.table) == 5 and late.gossiper.schedule.network_size() == 5
    assert len(late.gossiper.table) == 4
    async with aiohttp.ClientSession() as http, http.get(f"{late.url}/metrics") as r:
        text = await r.text()
    assert "iwlz_gossip_told_table 5.0" in text and "iwlz_gossip_round_budget_bytes 100000.0" in text  # the floor


async def test_a_peer_that_lost_our_certificate_asks_for_it_and_the_request_succeeds(chain: Chain) -> None:
    a = await chain.add("a", bootstrap=[], interval=0)
    b = await chain.add("b", bootstrap=[a.url], interval=0)
    assert b.endpoint.holds_our_certificate(a.identity.did)  # after the introduction
    a.trust._verified.clear()  # a's cache turned over
    probe = PeerExchange(hash=bytes(16), summary=None, digest=(), buckets=(), want=(), announcements=(), sample=0,
                         revocations={})
    reply = await b.client.request(a.url, probe, to=a.identity.did)
    assert reply.sender.did == a.identity.did
    assert b.endpoint.holds_our_certificate(a.identity.did)


async def test_bootstrap_peers_find_each_other_and_others_ask_only_one(chain: Chain) -> None:
    ports = free_ports(3)
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    boots = [await chain.add(f"b{i}", bootstrap=urls, interval=0, port=port) for i, port in enumerate(ports)]
    # Each saw its own URL in the list: it is a bootstrap peer and reached every other one that was up.
    assert all(b.gossiper.is_bootstrap for b in boots)
    assert {p.did for p in boots[2].peers.all()} == {boots[0].identity.did, boots[1].identity.did}
    for b in boots[:2]:
        await b.maintain_peers()  # the ones that started first retry those that were not up yet
        assert len(b.peers) == 2
    newcomer = await chain.add("newcomer", bootstrap=urls, interval=0)
    assert not newcomer.gossiper.is_bootstrap and len(newcomer.gossiper.bootstrap_dids) == 1
    introduced = [b for b in boots if b.peers.get(newcomer.identity.did) is not None]
    assert len(introduced) == 1  # one introduction, not three
    assert newcomer.gossiper._bootstrap_peers() == {b.identity.did for b in boots}  # all known by URL


async def test_a_changed_announcement_reaches_every_node_as_a_rumor(chain: Chain) -> None:
    *_, changer = await chain.star("c", 8)
    before = changer.discovery.announced_seq
    changer.discovery.announce()  # as at half-life: a new seq, signed again
    assert changer.discovery.announced_seq > before
    did, seq = changer.identity.did, changer.discovery.announced_seq
    others = [n for n in chain.nodes if n is not changer]
    await until(lambda: all(n.peers.get(did).seq == seq for n in others))
    # The table in memory takes the rumor first; the store's write follows in the same task.
    deadline = time.monotonic() + 5
    while (stored := await others[0].store.fetchall("SELECT seq FROM peers WHERE did = ?", (did,))) != [(seq,)]:
        assert time.monotonic() < deadline, stored
        await asyncio.sleep(0.05)


async def test_the_round_budget_renews_with_time_when_no_rounds_run(chain: Chain) -> None:
    node = await chain.add("quiet", bootstrap=[], interval=0)
    node.gossiper.budget.spend(node.gossiper.budget.left)  # all handed out
    assert node.gossiper.budget.left == 0
    node.gossiper._budget_since -= 2.0  # a second and more later
    assert node.gossiper.budget.left > 0
