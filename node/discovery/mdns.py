"""mDNS on the LAN (python-zeroconf): announce ``_iwlz._tcp.local.`` and browse for peers.

The TXT record holds only the did and the path of the signed announcement:
never personal data, never the organisation's records. What a browser finds
is a hint: the node fetches the announcement from the advertised address and
adds the peer only when its signature and certificate check out.

Anyone on the LAN can announce services, without a certificate, as many as
he likes and at any address. So hints wait in a bounded queue (one place per
service name; those that do not fit are left out), are followed a few at a
time with a short timeout, and an address is asked at most once a minute:
a flood of hints costs the node a little discovery, never the connections
its peer client needs for the peers it has (tests/node/discovery/test_mdns_flood.py).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from zeroconf import InterfaceChoice, IPVersion, NonUniqueNameException, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from node.client import ANNOUNCEMENT_PATH
from node.quiet import Throttled

log = logging.getLogger(__name__)
SERVICE_TYPE = "_iwlz._tcp.local."
HINTS_AT_ONCE = 8  # hints followed at once: of the peer client's 256 connections, the rest stay for the peers
HINT_QUEUE = 256  # service names waiting to be followed
HINT_TIMEOUT = 3.0  # seconds for a hint's announcement: on the LAN it comes in milliseconds
ASKED_AGAIN_AFTER = 60.0  # seconds before an address is asked again, however often it is announced
REMEMBERED = 4096  # addresses remembered as asked
REGISTER_TIMEOUT = 15.0  # seconds to find a free service name (each name probed takes ~1 s)
LearnFrom = Callable[[str, float], Awaitable[str | None]]


class Mdns:
    """Announces our did and announcement path; hands what it finds to ``learn_from`` (which verifies)."""

    def __init__(self, *, url: str, did: str, learn_from: LearnFrom, interfaces: list[str] | None = None,
                 announce: bool = True) -> None:
        self.url = url
        self.announce = announce  # a client's node browses, but does not tell the LAN it is there
        self.did = did
        self.learn_from = learn_from
        self.interfaces = interfaces
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._queue: asyncio.Queue[str] = asyncio.Queue(HINT_QUEUE)
        self._queued: set[str] = set()  # names in the queue: a name announced again while it waits takes no place
        self._asked: OrderedDict[str, float] = OrderedDict()  # address -> when it was last asked (monotonic)
        self._workers: list[asyncio.Task[None]] = []
        self._left_out = Throttled(log)

    def _service_info(self) -> AsyncServiceInfo:
        url = urlsplit(self.url)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        addresses = [socket.inet_aton(a) for a in (self.interfaces or [host]) if a not in ("0.0.0.0", "all")]
        name = f"iwlz-{self.did[-16:]}.{SERVICE_TYPE}"
        return AsyncServiceInfo(SERVICE_TYPE, name, addresses=addresses or None, port=port,
                                properties={"did": self.did, "path": ANNOUNCEMENT_PATH})

    async def start(self) -> None:
        self._zc = AsyncZeroconf(interfaces=self.interfaces or InterfaceChoice.All, ip_version=IPVersion.V4Only)
        if self.announce:
            await self._register(self._zc)
        self._workers = [asyncio.ensure_future(self._follow_hints()) for _ in range(HINTS_AT_ONCE)]
        self._browser = AsyncServiceBrowser(self._zc.zeroconf, SERVICE_TYPE, handlers=[self._on_change])
        log.info("mDNS: %s %s", "announcing and browsing" if self._info is not None else "browsing", SERVICE_TYPE)

    async def _register(self, zc: AsyncZeroconf) -> None:
        """Announce under our name, or the next free one (``iwlz-…-2``): the name follows from our did, which is
        public, so anyone on the LAN can claim it first. If no name is had in time, the node browses without
        announcing itself rather than not starting (peers still find it by bootstrap and gossip)."""
        info = self._service_info()
        try:
            await asyncio.wait_for(zc.async_register_service(info, allow_name_change=True), REGISTER_TIMEOUT)
        except (NonUniqueNameException, asyncio.TimeoutError) as exc:
            log.warning("mDNS: no service name of ours is free on the LAN (%s); browsing without announcing",
                        exc.__class__.__name__)
            return
        self._info = info

    def queued(self) -> int:
        """Service names waiting to be followed."""
        return self._queue.qsize()

    def _on_change(self, zeroconf: Any, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change not in (ServiceStateChange.Added, ServiceStateChange.Updated) or name in self._queued:
            return
        if self._info is not None and name == self._info.name:
            return
        try:
            self._queue.put_nowait(name)
        except asyncio.QueueFull:
            # The name is the announcer's choice: it is not logged.
            self._left_out.note("full", "mDNS: more services announced than can wait to be checked; some left out")
            return
        self._queued.add(name)

    async def _follow_hints(self) -> None:
        while True:
            name = await self._queue.get()
            self._queued.discard(name)
            try:
                await self._resolve(name)
            except Exception as exc:  # one hint's failure must not end the worker  # noqa: BLE001
                log.warning("mDNS: a hint could not be followed (%s)", exc.__class__.__name__)

    async def _resolve(self, name: str) -> None:
        if self._zc is None:
            return
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if not await info.async_request(self._zc.zeroconf, 3000):
            return
        path = ((info.properties or {}).get(b"path") or ANNOUNCEMENT_PATH.encode()).decode("ascii", "replace")
        if path != ANNOUNCEMENT_PATH:
            return
        for address in info.parsed_addresses(IPVersion.V4Only):
            url = f"http://{address}:{info.port}"
            if not self._may_ask(url):
                continue
            if await self.learn_from(url, HINT_TIMEOUT) is not None:
                return

    def _may_ask(self, url: str) -> bool:
        """True once a minute per address; remembers the newest REMEMBERED addresses."""
        now = time.monotonic()
        asked = self._asked.get(url)
        if asked is not None and now - asked < ASKED_AGAIN_AFTER:
            return False
        self._asked[url] = now
        self._asked.move_to_end(url)
        while len(self._asked) > REMEMBERED:
            self._asked.popitem(last=False)
        return True

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._browser is not None:
            await self._browser.async_cancel()
        if self._zc is not None:
            if self._info is not None:
                await self._zc.async_unregister_service(self._info)
            await self._zc.async_close()
        self._zc = None


__all__ = ["Mdns", "SERVICE_TYPE"]
