"""A member whose endpoint's name never resolves holds up no one else's deliveries.

A member names its endpoint in its signed announcement: a host name it
chooses, under a domain whose DNS it runs. If that DNS never answers, every
lookup of the name waits for the resolver's timeout (glibc: 5 s, twice).
aiohttp's default resolver ran each lookup as a blocking getaddrinfo on the
event loop's shared thread pool (min(32, cores + 4) threads): forty such
names (forty members, or one member announcing a new name every few
seconds) kept every thread busy, and the lookup of an honest member's name
waited behind them, so what the node had for that member was not delivered
for minutes, and never while the names kept being retried. Lookups now go
through c-ares (aiodns): no thread per lookup, each waits on its own.

The node under attack runs as a process whose /etc/resolv.conf (in a mount
namespace of its own) names a DNS server this test runs on 127.x: it answers
the honest member's name at once and never answers the others. Needs root.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import socket
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.admin.client import AdminClient
from node.client import MESSAGES_PATH
from node.home import NetworkDir, NodeHome
from node.service import Node
from protocol import MEDIA_TYPE, Announcement, Endpoint
from tests.hardening.kit import NodeProcess, free_port
from tests.node.kit import sample

pytestmark = [pytest.mark.asyncio, pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare (a mount namespace for the node's own resolv.conf)")]
SLOW_NAMES = 40  # more than the most threads asyncio's default pool has (32)
GOOD = "good.test"


class Dns:
    """A DNS server on 127.x.y.z:53: ``good.test`` is 127.0.0.1 (A; no AAAA), ``slow*.test`` is never answered,
    anything else does not exist. Counts the questions by name."""

    def __init__(self) -> None:
        import dns.message
        import dns.rcode
        import dns.rdatatype
        import dns.rrset

        self._dns = (dns.message, dns.rcode, dns.rdatatype, dns.rrset)
        self.address = f"127.53.{random.randrange(1, 255)}.{random.randrange(1, 255)}"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.address, 53))
        self.sock.settimeout(0.2)
        self.asked: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        message, rcode, rdatatype, rrset = self._dns
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = message.from_wire(data)
            question = query.question[0]
            name = question.name.to_text(omit_final_dot=True).lower()
            self.asked[name] += 1
            if name.startswith("slow"):
                continue  # the resolver waits for its timeout
            reply = message.make_response(query)
            if name == GOOD:
                if question.rdtype == rdatatype.A:
                    reply.answer.append(rrset.from_text(question.name, 60, "IN", "A", "127.0.0.1"))
            else:
                reply.set_rcode(rcode.NXDOMAIN)
            self.sock.sendto(reply.to_wire(), peer)

    @contextmanager
    def running(self) -> Iterator[Dns]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(5)
            self.sock.close()


def _with_resolv_conf(path: Path) -> list[str]:
    """A command prefix: the node sees ``path`` as its /etc/resolv.conf, in a mount namespace of its own."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(path)]


def _members(root: Path, net: NetworkDir, count: int) -> list[NodeHome]:
    homes = []
    for i in range(count):
        home = NodeHome.create(root / f"zk{i}", role="zorgkantoor", name=f"Zorgkantoor {i}",
                               identifiers={"uzovi": f"{5300 + i}"}, region=None)
        net.issue(home, now=int(time.time()), days=1)
        homes.append(home)
    return homes


async def _announce(ciz: NodeProcess, did: str, home: NodeHome, endpoint_url: str) -> None:
    """The member's own signed announcement, naming ``endpoint_url``, pushed to the node."""
    endpoint = Endpoint(home.identity(), home.certificate(), home.trust_store())
    now = int(time.time())
    data = endpoint.send(Announcement(seq=now, endpoints=(endpoint_url,), registers=(), templates=(), events=()),
                         to="*", now=now, lifetime=3600).data
    async with aiohttp.ClientSession() as http:
        async with http.post(ciz.url + MESSAGES_PATH, data=data, headers={"Content-Type": MEDIA_TYPE}) as response:
            assert response.status == 200, await response.read()


def _indicaties(uzovis: list[str]) -> list[dict[str, Any]]:
    out = []
    for uzovi in uzovis:
        record = json.loads(json.dumps(sample("wlzIndicaties", 0)))
        record["wlzIndicatieID"] = str(uuid.uuid4())
        record["initieelVerantwoordelijkZorgkantoor"] = uzovi
        out.append(record)
    return out


def _told(node: Node) -> int:
    with closing(sqlite3.connect(node.home.database_path)) as db, db:
        return int(db.execute("SELECT count(*) FROM inbox").fetchone()[0])


async def test_names_that_never_resolve_hold_up_no_other_members_delivery(tmp_path: Path) -> None:
    pytest.importorskip("dns.message")
    net = NetworkDir.create(tmp_path / "net", "test")
    with Dns().running() as dns:
        resolv = tmp_path / "resolv.conf"
        resolv.write_text(f"nameserver {dns.address}\n")
        ciz = NodeProcess(tmp_path, "ciz", net)
        ciz.start(prefix=_with_resolv_conf(resolv))
        good: Node | None = None
        try:
            did = json.loads((ciz.home.path / "run.json").read_text())["did"]
            for i, home in enumerate(_members(tmp_path / "members", net, SLOW_NAMES)):
                await _announce(ciz, did, home, f"http://slow{i}.test:{free_port()}")
            admin = AdminClient(ciz.home)
            await asyncio.to_thread(admin.call, "POST", "/admin/v1/records/WlzIndicatie/bulk",
                                    _indicaties([f"{5300 + i}" for i in range(SLOW_NAMES)]))
            for _ in range(100):  # until the node is looking the slow names up
                if sum(1 for name in dns.asked if name.startswith("slow")) >= SLOW_NAMES // 2:
                    break
                await asyncio.sleep(0.1)

            home = NodeHome.create(tmp_path / "good", role="zorgkantoor", name="Zorgkantoor Goed",
                                   identifiers={"uzovi": "5299"}, region=None)
            net.issue(home, now=int(time.time()), days=1)
            config = home.config()
            config.port = free_port()
            config.public_url = f"http://{GOOD}:{config.port}"
            home.save_config(config)
            good = Node(home, bootstrap=[ciz.url], mdns=False, gossip_interval=0)
            await good.start()
            await _announce(ciz, did, home, config.public_url)
            await asyncio.to_thread(admin.call, "POST", "/admin/v1/records/WlzIndicatie/bulk", _indicaties(["5299"]))

            started = time.monotonic()
            while _told(good) == 0 and time.monotonic() - started < 20:  # before: still waiting after minutes
                await asyncio.sleep(0.1)
            assert _told(good) == 1, f"not delivered in {time.monotonic() - started:.0f} s; asked: {dict(dns.asked)}"
            assert dns.asked[GOOD] >= 1  # the name was looked up, through this server
            assert sum(1 for name in dns.asked if name.startswith("slow")) >= SLOW_NAMES // 2
        finally:
            if good is not None:
                await good.stop()
            ciz.stop()
        assert ciz.errors_in_log() == []
