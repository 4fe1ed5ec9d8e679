"""Connections a listener accepts, bounded: no client can hold the node by connecting slowly or often.

aiohttp has no deadline for a request's headers and no connection limit, so
1,500 connections that trickle their headers filled the node's file
descriptors and it stopped answering anyone. The guard sits between the
socket and aiohttp's protocol: a connection that has not started a request
within ``header_timeout`` seconds of opening (or of its last request) is
closed; at ``max_connections`` a new connection pushes out one that never
started a request, else one whose request's body is still arriving, else the
oldest idle one, and the limit stays below the process's file limit, so
accept() never fails (a body must also arrive in time: MessageDesk). A
listener logs what clients get wrong at most once a minute, without
tracebacks: a client cannot flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web

log = logging.getLogger(__name__)
RESERVED_FILES = 128  # for the store, the peer client's connections and the process itself


def _soft_file_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else int(soft)


def accept_backlog() -> int:
    """How many connections the kernel queues, and asyncio accepts in one go: a sixteenth of the file limit,
    32..1024."""
    return max(32, min(1024, _soft_file_limit() // 16))


def connection_limit(wanted: int) -> int:
    """``wanted``, but so low that accept() never fails for want of files (asyncio then stops accepting for a
    second): asyncio accepts a burst of up to the backlog before the connections it makes room by closing give
    their files back, two loop turns later, so a few bursts' worth stays free."""
    return max(16, min(wanted, _soft_file_limit() - RESERVED_FILES - 4 * accept_backlog()))


@dataclass(slots=True)
class _Connection:
    idle_since: float
    busy: int = 0
    served: int = 0  # requests it completed: a client that has shown it speaks HTTP is evicted last
    body: Any = None  # the request's body (a StreamReader) while one is under way: until it is whole, evictable
    request_since: float = 0.0  # when that request's headers came

    def receiving(self) -> bool:
        """In the middle of a request whose body has not all arrived: the headers alone cost a sender nothing."""
        return self.busy > 0 and self.body is not None and not self.body.is_eof()


class ConnectionGuard:
    def __init__(self, *, max_connections: int, header_timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_connections = connection_limit(max_connections)
        self.header_timeout = header_timeout
        self.clock = clock
        self._open: OrderedDict[asyncio.Transport, _Connection] = OrderedDict()
        self.evicted = 0
        self.closing = False  # the listener is stopping: a connection accepted just now is closed at once

    def __len__(self) -> int:
        return len(self._open)

    def protocol(self, inner: asyncio.Protocol) -> asyncio.Protocol:
        return _Guarded(inner, self)

    def opened(self, transport: asyncio.Transport) -> None:
        if self.closing or (len(self._open) >= self.max_connections and not self._evict_one()):
            transport.abort()  # every connection is in the middle of a request: this one waits its turn
            return
        self._open[transport] = _Connection(self.clock())

    def closed(self, transport: asyncio.Transport) -> None:
        self._open.pop(transport, None)

    def _evict_one(self) -> bool:
        """Make room: the oldest connection that never started a request, else the one whose request's body has
        been arriving the longest (a trickle, more likely than an upload that has just begun), else the oldest idle
        one. One handling a whole request is never pushed out."""
        receiving: asyncio.Transport | None = None
        idle: asyncio.Transport | None = None
        since = float("inf")
        for transport, conn in self._open.items():
            if not conn.busy:
                if not conn.served:
                    self._drop(transport)
                    return True
                idle = idle or transport
            elif conn.request_since < since and conn.receiving():
                receiving, since = transport, conn.request_since
        chosen = receiving or idle
        if chosen is None:
            return False
        self._drop(chosen)
        return True

    def _drop(self, transport: asyncio.Transport) -> None:
        self._open.pop(transport, None)
        self.evicted += 1
        transport.abort()

    def close_all(self) -> None:
        for transport in list(self._open):
            self._drop(transport)

    def sweep(self) -> int:
        """Close connections that started no request within the header timeout."""
        deadline = self.clock() - self.header_timeout
        stale = [t for t, c in self._open.items() if not c.busy and c.idle_since < deadline]
        for transport in stale:
            self._drop(transport)
        return len(stale)

    async def run(self, every: float = 0.5) -> None:
        while True:
            await asyncio.sleep(every)
            self.sweep()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        conn = self._open.get(request.transport) if request.transport is not None else None
        if conn is not None:
            conn.busy += 1
            conn.body = request.content if request.body_exists else None
            conn.request_since = self.clock()
        try:
            return await handler(request)  # type: ignore[no-any-return]
        finally:
            if conn is not None:
                conn.busy -= 1
                conn.body = None
                conn.served += 1
                conn.idle_since = self.clock()


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol, with the guard told when a connection opens and closes."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self.inner = inner
        self.guard = guard
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, but not always a subclass of asyncio.Transport (uvloop's is not).
        stream = cast(asyncio.Transport, transport)
        self.transport = stream
        self.guard.opened(stream)
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.guard.closed(self.transport)
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class QuietClientErrors(logging.Filter):
    """What aiohttp logs about a client's bad HTTP: one line a minute with a count, never a traceback."""

    def __init__(self, every: float = 60.0) -> None:
        super().__init__()
        self.every = every
        self._since = 0.0
        self._count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        self._count += 1
        now = time.monotonic()
        if now - self._since < self.every:
            return False
        record.msg, record.args = "refused %d malformed or broken client connection(s) in the last minute (%s)", (
            self._count, record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else "no detail")
        record.exc_info, record.exc_text, record.levelno, record.levelname = None, None, logging.INFO, "INFO"
        self._since, self._count = now, 0
        return True


def quiet_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    if not any(isinstance(f, QuietClientErrors) for f in logger.filters):
        logger.addFilter(QuietClientErrors())
    return logger


class Listener:
    """One guarded listening socket serving an aiohttp application."""

    def __init__(self, app: web.Application, *, max_connections: int, header_timeout: float, logger_name: str) -> None:
        self.guard = ConnectionGuard(max_connections=max_connections, header_timeout=header_timeout)
        app.middlewares.insert(0, self.guard.middleware)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=header_timeout,
                                    auto_decompress=False, logger=quiet_logger(logger_name))
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None, *, reuse_port: bool = False) -> int:
        """Listen; returns the port (useful when ``port`` is 0). Raises OSError.

        ``reuse_port``: several processes listen on the one port and the kernel spreads connections over them.
        """
        await self.runner.setup()
        factory = self.runner.server
        assert factory is not None
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(lambda: self.guard.protocol(factory()), host, port,
                                                    reuse_address=True, reuse_port=reuse_port or None,
                                                    backlog=accept_backlog(), ssl=tls,
                                                    ssl_handshake_timeout=self.guard.header_timeout if tls else None)
        except OSError:
            await self.runner.cleanup()
            raise
        self._sweeper = asyncio.create_task(self.guard.run(), name="connection-sweeper")
        return int(self._server.sockets[0].getsockname()[1])

    async def start_unix(self, path: str) -> None:
        """Listen on a Unix socket only this user may connect to (the node's own processes). Raises OSError."""
        await self.runner.setup()
        factory = self.runner.server
        assert factory is not None
        old = os.umask(0o177)
        try:
            self._server = await asyncio.get_running_loop().create_unix_server(
                lambda: self.guard.protocol(factory()), path, backlog=accept_backlog())
        except OSError:
            await self.runner.cleanup()
            raise
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        self._sweeper = asyncio.create_task(self.guard.run(), name="connection-sweeper")

    async def stop(self) -> None:
        self.guard.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        if self._server is not None:
            self._server.close()
        await self.runner.cleanup()
        self.guard.close_all()
        # An aborted transport closes its socket on the next loop turn: give it those turns here, so that a
        # loop that ends right after stop() (a test, a process) leaves no accepted socket to the garbage collector.
        for _ in range(3):
            await asyncio.sleep(0)


__all__ = ["ConnectionGuard", "Listener", "connection_limit", "quiet_logger", "QuietClientErrors"]
