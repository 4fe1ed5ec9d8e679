"""mDNS on the LAN (python-zeroconf): announce ``_iwlz._tcp.local.`` and browse for peers.

The TXT record holds only the did and the path of the signed announcement:
never personal data, never the organisation's records. What a browser finds
is a hint: the node fetches the announcement from the advertised address and
adds the peer only when its signature and certificate check out.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from node.client import ANNOUNCEMENT_PATH

log = logging.getLogger(__name__)
SERVICE_TYPE = "_iwlz._tcp.local."
LearnFrom = Callable[[str], Awaitable[str | None]]


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
        self._pending: set[asyncio.Task[Any]] = set()

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
            self._info = self._service_info()
            await self._zc.async_register_service(self._info)
        self._browser = AsyncServiceBrowser(self._zc.zeroconf, SERVICE_TYPE, handlers=[self._on_change])
        log.info("mDNS: announcing %s and browsing", SERVICE_TYPE)

    def _on_change(self, zeroconf: Any, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            task = asyncio.ensure_future(self._resolve(service_type, name))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _resolve(self, service_type: str, name: str) -> None:
        if self._zc is None or (self._info is not None and name == self._info.name):
            return
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(self._zc.zeroconf, 3000):
            return
        path = ((info.properties or {}).get(b"path") or ANNOUNCEMENT_PATH.encode()).decode("ascii", "replace")
        if path != ANNOUNCEMENT_PATH:
            return
        for address in info.parsed_addresses(IPVersion.V4Only):
            did = await self.learn_from(f"http://{address}:{info.port}")
            if did is not None:
                return

    async def stop(self) -> None:
        for task in list(self._pending):
            task.cancel()
        if self._browser is not None:
            await self._browser.async_cancel()
        if self._zc is not None:
            if self._info is not None:
                await self._zc.async_unregister_service(self._info)
            await self._zc.async_close()
        self._zc = None


__all__ = ["Mdns", "SERVICE_TYPE"]
