"""Real nodes on 127.0.0.1, port 0, each with its own home and SQLite file."""

from __future__ import annotations

import asyncio
import copy
import subprocess
import json
import uuid
from pathlib import Path
from typing import Any

from node.home import NetworkDir, NodeHome
from node.service import Node

FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "iwlz-sample.json"
# CI runs on a clone with shared/ beside it; fall back to the copy in tests/ otherwise.
if not FIXTURE.exists():
    FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "iwlz-sample.json"
SAMPLE: dict[str, Any] = json.loads(FIXTURE.read_text())

# Ids in the sample data.
IND0 = "31835d1d-3933-4ffe-9f57-8985f41fae4a"
IND1 = "6054aa24-dbc0-4b3d-aea2-038c24e166c7"
BEM0 = "ca6cd66c-78e8-45bc-afb7-3578f78e1ffa"
BEM1 = "e164f982-15c0-40b7-babb-1e8530a037ef"
SPEC0 = "d9cf7a0c-449a-4166-8186-68568c529b48"
BSN0 = "106658037"

PARTIES = {
    "ciz": ("ciz", "CIZ", {"kvk": "62253778"}, None),
    "cak": ("cak", "CAK", {"kvk": "27364237"}, None),
    "zk5151": ("zorgkantoor", "Zorgkantoor Noord", {"uzovi": "5151"}, None),
    "zk5050": ("zorgkantoor", "Zorgkantoor Zuid", {"uzovi": "5050"}, None),
    "zk5252": ("zorgkantoor", "Zorgkantoor West", {"uzovi": "5252"}, None),
    "za_a": ("zorgaanbieder", "Zorggroep De Linde", {"agb": "12345678"}, "5151"),
    "za_b": ("zorgaanbieder", "Thuiszorg Het Anker", {"agb": "87654321"}, "5151"),
    "client": ("client", None, {"bsn": "106658037"}, "5151"),  # a client's node takes no name
    "client2": ("client", None, {"bsn": "737459086"}, "5151"),
}


def sample(section: str, index: int) -> dict[str, Any]:
    return copy.deepcopy(SAMPLE[section][index])


LEVERING_ID = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def levering(**changes: Any) -> dict[str, Any]:
    """Care for client BSN0 at provider 12345678, on the specificatie SPEC0 of zorgkantoor 5151."""
    data = {"leveringID": LEVERING_ID, "bemiddelingspecificatieID": SPEC0, "wlzIndicatieID": IND0, "bsn": BSN0,
            "zorgkantoor": "5151", "zzpCode": "5VV", "leveringsvorm": "1",
            "leveringperiodes": [{"ingangsdatum": "2026-10-01"}], "verzoeken": []}
    data.update(changes)
    return data


class Network:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.net = NetworkDir.create(root / "network", "test")
        self.nodes: dict[str, Node] = {}

    def home(self, name: str) -> NodeHome:
        return self.home_for(name, name)

    def home_for(self, party: str, directory: str) -> NodeHome:
        """A new home (own key) for one of PARTIES, in ``directory`` under the network's root."""
        role, org, ids, region = PARTIES[party]
        home = NodeHome.create(self.root / directory, role=role, name=org, identifiers=ids, region=region)
        self.net.issue(home, now=_now(), days=30)
        return home

    async def start(self, *names: str, freshness: int | None = None, **settings: Any) -> list[Node]:
        """Start these parties; ``settings`` are config.json settings for each of them."""
        started = []
        for name in names:
            home = self.home(name)
            if freshness is not None:
                settings["evidence_freshness"] = freshness
            if settings:
                config = home.config()
                for key, value in settings.items():
                    setattr(config, key, value)
                home.save_config(config)
            node = Node(home, bootstrap=[n.url for n in self.nodes.values()], mdns=False, gossip_interval=0)
            await node.start()
            self.nodes[name] = node
            started.append(node)
        # Everybody learns everybody (discovery proper is tested elsewhere).
        for node in self.nodes.values():
            for other in self.nodes.values():
                if other is not node and node.peers.get(other.identity.did) is None:
                    await node.learn_from(other.url, source="bootstrap")
        return started

    async def stop(self) -> None:
        for node in self.nodes.values():
            await node.stop()

    async def settle(self, timeout: float = 15.0) -> None:
        """Wait until every notification is delivered and acted on (or failed), so state stands still."""
        await settle(list(self.nodes.values()), timeout)

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]


class Tap:
    """A TCP relay to a node's port that keeps every byte it carries, both ways: what anyone on the path sees (a
    node's trust does not rest on TLS, and a test network runs without it). Give a node ``url`` as its public URL,
    then set ``port`` to the port it listens on."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port
        self.seen = bytearray()
        self.url = ""
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self.url

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.port is None:  # the node is not listening yet (it may try its own URL as it starts)
                raise ConnectionRefusedError
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    self.seen += data
                    sink.write(data)
                    await sink.drain()
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)
        self._writers -= {writer, up_writer}

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()


def _now() -> int:
    import time

    return int(time.time())


def reap(proc: "subprocess.Popen[str]", timeout: float = 10) -> None:
    """Wait for a node process we stopped (kill it if it hangs) and close its pipe."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout:
        proc.stdout.close()


async def settle(nodes: list[Node], timeout: float = 15.0) -> None:
    import asyncio
    import time as _time

    deadline = _time.monotonic() + timeout
    while _time.monotonic() < deadline:
        busy = False
        for node in nodes:
            pending = await node.store.fetchone(  # due and not tried yet (a row for no known peer waits)
                "SELECT count(*) FROM outbox WHERE status = 'pending' AND attempts = 0 AND next_attempt_at <= ?",
                (_time.time(),))
            waiting = await node.store.fetchone("SELECT count(*) FROM inbox WHERE status = 'received'")
            tasks = [t for t in node._tasks if not t.done() and t.get_name() not in ("gossip", "outbox", "housekeeping", "record signer")]
            busy = busy or bool(pending and pending[0]) or bool(waiting and waiting[0]) or bool(tasks)
        if not busy:
            await asyncio.sleep(0.05)
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"notifications did not settle in time: {[(n.member.organisation, await n.store.fetchall('SELECT status, attempts, event_type FROM outbox'), await n.store.fetchall('SELECT status FROM inbox'), [t.get_name() for t in n._tasks if not t.done()]) for n in nodes]}")


async def put(node: Node, kind: str, data: dict[str, Any]) -> None:
    """Store a record at ``node`` as its own organisation would."""
    await node.registers.put(kind, data, actor=node.actor, now=node.now())


def indicatie(zorgkantoor: str = "5151") -> dict[str, Any]:
    """A new indicatie (its own id) for the clients of ``zorgkantoor``."""
    return {**sample("wlzIndicaties", 0), "wlzIndicatieID": str(uuid.uuid4()), "initieelVerantwoordelijkZorgkantoor": zorgkantoor}


async def put_indicaties(node: Node, records: list[dict[str, Any]]) -> None:
    """Store new indicaties at ``node`` in one batch, as an import does; every one is created."""
    result = await node.registers.put_many("WlzIndicatie", [(n, None, r) for n, r in enumerate(records)],
                                           actor=node.actor, now=node.now())
    assert result.created == len(records)


CHROMIUM = __import__("shutil").which("chromium") or __import__("shutil").which("chromium-browser")


async def rendered(url: str, *, budget_ms: int = 8000) -> str:
    """The DOM of ``url`` after headless Chromium ran its scripts, as a person's browser would."""
    import asyncio
    import tempfile

    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", "--dump-dom", url,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        dom, _ = await asyncio.wait_for(proc.communicate(), timeout=90)
    return dom.decode()


class Browser:
    """A person's browser: headless Chromium (Debian's) driven through Playwright, one page."""

    async def __aenter__(self) -> Any:
        from playwright.async_api import async_playwright

        assert CHROMIUM is not None
        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        self.page = await self._browser.new_page()
        self.page.set_default_timeout(10_000)
        return self.page

    async def __aexit__(self, *exc: object) -> None:
        await self._browser.close()
        await self._playwright.stop()


class BlackHole:
    """Listeners on 127.0.0.1 that accept connections, read what comes and never answer; they count what they hold.
    ``start`` may be called more than once: each call adds a listener (port 0: a free one) and returns its port."""

    def __init__(self) -> None:
        self.servers: list[asyncio.AbstractServer] = []
        self.held: set[asyncio.StreamWriter] = set()
        self.accepted = 0  # connections ever taken
        self.most = 0  # the most held at once

    async def start(self, port: int = 0) -> int:
        server = await asyncio.start_server(self._swallow, "127.0.0.1", port)
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def _swallow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.held.add(writer)
        self.most = max(self.most, len(self.held))
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        finally:
            self.held.discard(writer)
            writer.close()

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for writer in list(self.held):
            writer.close()
        for server in self.servers:
            await server.wait_closed()
