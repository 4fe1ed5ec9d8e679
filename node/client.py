"""The peer client: signed requests over one pooled aiohttp session, replies verified and bound."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

import aiohttp

from node.clock import ClockWatch
from node.errors import NetworkError, PeerRefused
from protocol import MEDIA_TYPE, Endpoint, Error, ErrorCode, Incoming, Message, RemoteProtocolError, with_bsn_key

MESSAGES_PATH = "/iwlz/v1/messages"
ANNOUNCEMENT_PATH = "/iwlz/v1/announcement"


class _CertificateNotHeld(NetworkError):
    """One side named a certificate by hash that the other does not hold: send it whole."""


async def read_bounded(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """A body to its end, or its first ``limit + 1`` bytes when it is longer (the caller refuses those).

    ``StreamReader.read(n)`` returns what has arrived so far, at most n bytes: one call cuts a body that comes
    in several chunks, as any body of more than a few tens of kilobytes does.
    """
    data = bytearray()
    while len(data) <= limit:
        chunk = await stream.read(limit + 1 - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


class PeerClient:
    def __init__(self, endpoint: Endpoint, *, timeout: float = 10.0, clock: Callable[[], float] = time.time,
                 watch: ClockWatch | None = None, tls: ssl.SSLContext | None = None,
                 own_bsn: tuple[str, bytes] | None = None) -> None:
        self.endpoint = endpoint
        self.own_bsn = own_bsn  # a client's node: his BSN and the key of his certificate's commitment to it
        self.tls = tls  # for https peers; None: the system's CAs
        self.clock = clock
        self.watch = watch or ClockWatch(clock)
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 5.0))
        self._session: aiohttp.ClientSession | None = None
        self._resolver: aiohttp.AsyncResolver | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Kept shorter than a node's idle timeout for connections, so that a pooled connection is not one the
            # peer is about to close.
            # Peers' names are looked up with c-ares (aiodns), each lookup waiting on its own: aiohttp's threaded
            # resolver ran each as a blocking getaddrinfo on the loop's shared pool of min(32, cores + 4) threads,
            # and names a member made never resolve (its own DNS does not answer) held every thread, so that no
            # other peer's name was looked up for minutes (tests/hardening/test_slow_names.py).
            self._resolver = self._resolver or aiohttp.AsyncResolver()
            connector = aiohttp.TCPConnector(limit=256, limit_per_host=64, keepalive_timeout=10, resolver=self._resolver,
                                            ssl=self.tls if self.tls is not None else True)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()  # passed in, so the connector leaves it open
            self._resolver = None

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        data = await read_bounded(response.content, self.endpoint.max_size)
        if len(data) > self.endpoint.max_size:
            raise NetworkError("peer answered with more than the size limit")
        return data

    async def fetch_announcement(self, base_url: str, *, timeout: float | None = None) -> Incoming:
        """GET a node's signed announcement and verify it (it is only a hint until it does); ``timeout`` in seconds
        replaces the client's for this request."""
        url = base_url.rstrip("/") + ANNOUNCEMENT_PATH
        limit = self._timeout if timeout is None else aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 5.0))
        try:
            async with self._http().get(url, timeout=limit) as response:
                data = await self._read(response)
                if response.status != 200:
                    raise NetworkError(f"{url} answered HTTP {response.status}")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise NetworkError(f"cannot reach {base_url}: {exc.__class__.__name__}") from exc
        try:
            incoming = self.endpoint.verify_broadcast(data, now=int(self.clock()))
        except RemoteProtocolError as exc:
            raise NetworkError(f"announcement from {base_url} refused ({exc.code}): {exc.reason}{self._hint(exc)}") from exc
        return incoming

    async def _post(self, base_url: str, data: bytes) -> bytes:
        try:
            async with self._http().post(base_url.rstrip("/") + MESSAGES_PATH, data=data,
                                         headers={"Content-Type": MEDIA_TYPE}) as response:
                return await self._read(response)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise NetworkError(f"cannot reach {base_url}: {exc.__class__.__name__}") from exc

    async def _exchange(self, base_url: str, data: bytes, *, to: str, request_id: bytes | None) -> Incoming:
        """POST an envelope; return the verified reply bound to it, or raise PeerRefused / NetworkError."""
        answer = await self._post(base_url, data)
        try:
            reply = self.endpoint.receive_reply_to(answer, data, recipient=to, request_id=request_id, now=int(self.clock()))
        except RemoteProtocolError as exc:
            if exc.code is ErrorCode.UNKNOWN_CERTIFICATE:
                raise _CertificateNotHeld(f"reply from {base_url} names a certificate we do not hold") from exc
            raise NetworkError(f"reply from {base_url} refused ({exc.code}): {exc.reason}{self._hint(exc)}") from exc
        offset = self.watch.saw(reply.envelope.issued_at, reply.envelope.sender)
        if isinstance(reply.message, Error):
            if reply.message.code == ErrorCode.UNKNOWN_CERTIFICATE:
                raise _CertificateNotHeld(f"{base_url} does not hold our certificate")
            hint = self.watch.hint(offset) if reply.message.code in (ErrorCode.EXPIRED, ErrorCode.NOT_YET_VALID) else ""
            raise PeerRefused(reply.message.code, reply.message.reason, reply.message.rule, note=hint)
        return reply

    def _hint(self, exc: RemoteProtocolError) -> str:
        """A refusal for time: note the peer's time, and say how far the clocks differ."""
        if exc.code not in (ErrorCode.EXPIRED, ErrorCode.NOT_YET_VALID) or exc.issued_at is None or exc.sender is None:
            return ""
        return self.watch.hint(self.watch.saw(exc.issued_at, exc.sender))

    async def push(self, base_url: str, data: bytes, *, to: str) -> Incoming:
        """POST an envelope made earlier (our signed announcement) and verify the reply bound to it."""
        return await self._exchange(base_url, data, to=to, request_id=None)

    async def request(self, base_url: str, message: Message, *, to: str, trace_id: str | None = None) -> Incoming:
        """Send ``message`` to the node ``to`` at ``base_url``; return its verified reply.

        Raises:
            PeerRefused: the peer answered with a signed error.
            NetworkError: no usable answer.
        """
        if self.own_bsn is not None:
            message = with_bsn_key(message, *self.own_bsn)
        outgoing = self.endpoint.send(message, to=to, now=int(self.clock()), trace_id=trace_id)
        try:
            return await self._exchange(base_url, outgoing.data, to=to, request_id=outgoing.envelope.message_id)
        except _CertificateNotHeld:
            # It restarted, or its cache (or ours) turned over: once more with the certificates whole.
            self.endpoint.forget_holder(to)
            outgoing = self.endpoint.send(message, to=to, now=int(self.clock()), trace_id=trace_id, cert_by_hash=False)
            return await self._exchange(base_url, outgoing.data, to=to, request_id=outgoing.envelope.message_id)


__all__ = ["PeerClient", "read_bounded", "MESSAGES_PATH", "ANNOUNCEMENT_PATH"]
