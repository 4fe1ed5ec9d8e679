"""Anyone on the LAN can announce services over mDNS: what he announces may cost the node a little discovery, never
its traffic with the peers it has.

mDNS needs no certificate: every service a browser finds is a hint the node checks by fetching the announcement
at the address it names. A flood of hints pointing at addresses that accept a connection and never answer took
every connection the peer client has (256), so notifications and queries to real peers waited behind them until
they timed out. Now hints are fetched a few at a time, with a short timeout, an address at most once a minute,
and those that do not fit a bounded queue are left out. A node's service name follows from its did: someone
who claimed it first made the node's start fail; now it takes the next free name, or browses without announcing.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import time
from collections.abc import Iterator

import aiohttp
import pytest
from zeroconf import DNSAddress, DNSOutgoing, DNSPointer, DNSService, DNSText, IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf
from zeroconf.const import _CLASS_IN, _CLASS_UNIQUE, _FLAGS_AA, _FLAGS_QR_RESPONSE, _TYPE_A, _TYPE_PTR, _TYPE_SRV, _TYPE_TXT

from node.discovery import mdns
from node.discovery.mdns import SERVICE_TYPE
from node.service import Node
from tests.node.kit import BlackHole, Network, indicatie, put

pytestmark = pytest.mark.asyncio

NAMES = 300  # hints, each at an address of its own: more than the peer client has connections (256)


def flood(zc: AsyncZeroconf, ports: list[int], prefix: str) -> None:
    """Unsolicited mDNS answers, as a program on the LAN sends them: a service on each of ``ports``."""
    txt = b"\x0bdid=did:x:y" + bytes([len(b"path=/iwlz/v1/announcement")]) + b"path=/iwlz/v1/announcement"
    for i, port in enumerate(ports):
        name, server = f"{prefix}{i}.{SERVICE_TYPE}", f"{prefix}{i}.local."
        out = DNSOutgoing(_FLAGS_QR_RESPONSE | _FLAGS_AA)
        out.add_answer_at_time(DNSPointer(SERVICE_TYPE, _TYPE_PTR, _CLASS_IN, 120, name), 0)
        out.add_answer_at_time(DNSService(name, _TYPE_SRV, _CLASS_IN | _CLASS_UNIQUE, 120, 0, 0, port, server), 0)
        out.add_answer_at_time(DNSText(name, _TYPE_TXT, _CLASS_IN | _CLASS_UNIQUE, 120, txt), 0)
        out.add_answer_at_time(DNSAddress(server, _TYPE_A, _CLASS_IN | _CLASS_UNIQUE, 120, socket.inet_aton("127.0.0.1")), 0)
        zc.zeroconf.async_send(out)


@pytest.fixture(autouse=True)
def enough_files() -> Iterator[None]:
    """Before the fix the node held 256 connections to the holes, and the holes as many: more than 1,024 files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_an_mdns_flood_leaves_the_node_its_peers(network: Network, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    ciz, zk = await network.start("ciz", "zk5151")
    ciz.mdns_interfaces = ["127.0.0.1"]
    await ciz._start_mdns()  # noqa: SLF001 (the network kit starts nodes without mDNS)
    holes, attacker = BlackHole(), AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        ports = [await holes.start() for _ in range(NAMES)]
        await announce(attacker, ports)
        deadline = time.monotonic() + 5
        while holes.accepted < mdns.HINTS_AT_ONCE and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert holes.accepted >= mdns.HINTS_AT_ONCE  # the node did follow the hints

        # A notification to a real peer goes out now, not after the hints' time-outs.
        record = indicatie("5151")
        started = time.monotonic()
        await put(ciz, "WlzIndicatie", record)
        delivered = None
        while time.monotonic() - started < 8:
            row = await zk.store.fetchone("SELECT count(*) FROM inbox")
            if row and row[0]:
                delivered = time.monotonic() - started
                break
            await asyncio.sleep(0.02)
        assert delivered is not None and delivered < 2.0, delivered
        assert holes.most <= mdns.HINTS_AT_ONCE  # the hints took a few connections, never the client's

        # What is queued is bounded, whatever is announced; the same names again add nothing.
        assert ciz.mdns.queued() <= mdns.HINT_QUEUE
        await announce(attacker, ports)
        assert ciz.mdns.queued() <= mdns.HINT_QUEUE
        left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
        assert len(left_out) == 1 and "flood" not in left_out[0]  # once a minute, without the announcer's names
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await attacker.async_close()
        await holes.close()


async def announce(attacker: AsyncZeroconf, ports: list[int]) -> None:
    for start in range(0, len(ports), 30):  # a few packets at a time, as the loopback's buffers take them
        flood(attacker, ports[start:start + 30], prefix=f"flood{start}-")
        await asyncio.sleep(0.05)


async def test_an_address_announced_under_many_names_is_asked_once_and_a_real_peer_is_found(network: Network) -> None:
    ciz, = await network.start("ciz")
    ciz.mdns_interfaces = ["127.0.0.1"]
    await ciz._start_mdns()  # noqa: SLF001
    holes, attacker = BlackHole(), AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    zk = Node(network.home("zk5151"), bootstrap=[], mdns=True, mdns_interfaces=["127.0.0.1"], gossip_interval=0)
    try:
        port = await holes.start()
        await announce(attacker, [port] * 100)  # one address, 100 service names: what Updated after Updated costs too
        await zk.start()  # a real peer on the LAN, which no one has told of the others
        deadline = time.monotonic() + 10
        while ciz.peers.get(zk.identity.did) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert ciz.peers.get(zk.identity.did) is not None
        assert ciz.peers.get(zk.identity.did).source == "mdns"
        await asyncio.sleep(0.5)
        assert holes.accepted == 1
    finally:
        await zk.stop()
        await attacker.async_close()
        await holes.close()


async def test_a_service_name_taken_first_on_the_lan_does_not_keep_a_node_from_starting(network: Network) -> None:
    """A node's service name follows from its did, which is public: anyone on the LAN can claim it first."""
    ciz, = await network.start("ciz")
    home = network.home("zk5151")
    did = home.identity().did
    squatter = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    taken = AsyncServiceInfo(SERVICE_TYPE, f"iwlz-{did[-16:]}.{SERVICE_TYPE}", addresses=[socket.inet_aton("127.0.0.1")],
                             port=9, properties={"did": "did:key:someone-else"})
    await squatter.async_register_service(taken)
    ciz.mdns_interfaces = ["127.0.0.1"]
    await ciz._start_mdns()  # noqa: SLF001

    async def claim() -> None:
        # zeroconf defends a name it holds by unicast to a probe's port 5353, which every zeroconf on this host
        # shares, and the kernel hands a unicast datagram to one of them (here: ciz's, on some kernels): the
        # squatter also claims the name by multicast, as anyone on a LAN can.
        claimed = squatter.zeroconf.generate_service_broadcast(taken, None)
        for _ in range(300):
            squatter.zeroconf.async_send(claimed)
            await asyncio.sleep(0.1)

    claiming = asyncio.ensure_future(claim())
    zk = Node(home, bootstrap=[], mdns=True, mdns_interfaces=["127.0.0.1"], gossip_interval=0)
    try:
        await asyncio.wait_for(zk.start(), 30)
        claiming.cancel()
        assert zk.mdns._info is not None and zk.mdns._info.name != taken.name  # announced under another name
        deadline = time.monotonic() + 10
        while ciz.peers.get(zk.identity.did) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert ciz.peers.get(zk.identity.did) is not None  # and found by it
    finally:
        claiming.cancel()
        await zk.stop()
        await squatter.async_unregister_service(taken)
        await squatter.async_close()


async def test_a_node_that_gets_no_service_name_in_time_starts_without_announcing(
        network: Network, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Someone answering for every name would keep the search for a free one going: it is given up in time."""
    monkeypatch.setattr(mdns, "REGISTER_TIMEOUT", 0.01)  # shorter than one probe (~0.75 s)
    zk = Node(network.home("zk5151"), bootstrap=[], mdns=True, mdns_interfaces=["127.0.0.1"], gossip_interval=0)
    try:
        await asyncio.wait_for(zk.start(), 30)
        assert zk.mdns._info is None  # browsing, not announcing
        assert any("browsing without announcing" in r.getMessage() for r in caplog.records)
        async with aiohttp.ClientSession() as http, http.get(zk.url + "/health") as response:
            assert response.status == 200
    finally:
        await zk.stop()
