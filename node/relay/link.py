"""A worker's side: hand writes to the owner, pass on what the worker does not answer itself, hear of changes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import aiohttp
import cbor2
from aiohttp import web

from node.client import MESSAGES_PATH
from node.errors import NetworkError
from node.server.app import request_body
from node.relay.desk import CHANGES_PATH, COMMIT_PATH, TALLY_PATH, WAIT_FOR_CHANGE
from protocol import MEDIA_TYPE

_BASE = "http://owner"  # the host name is not used: the connector goes to the Unix socket
_PASSED_HEADERS = ("Content-Type", "Accept")
MAX_PASSED_BODY = 1024 * 1024  # the owner's largest body besides messages is a revocation list of 512 KiB


@contextlib.contextmanager
def _owner_call(*also: type[Exception]) -> Iterator[None]:
    """What goes wrong on the way to the owner (and ``also``, in reading its answer) as one NetworkError."""
    caught: tuple[type[Exception], ...] = (aiohttp.ClientError, OSError, asyncio.TimeoutError, *also)
    try:
        yield
    except caught as exc:
        raise NetworkError(f"the owner process cannot be reached ({exc.__class__.__name__})") from exc


class PrimaryLink:
    def __init__(self, socket_path: str, *, body_timeout: float) -> None:
        self.socket_path = socket_path
        self.body_timeout = body_timeout  # for a body passed on: as the node's own listener has it
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=self.socket_path, limit=64),
                                                  timeout=aiohttp.ClientTimeout(total=60))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def hand_over(self, groups: list[list[list[Any]]]) -> list[str]:
        """The owner's outcome for each group of statements, in order."""
        with _owner_call(cbor2.CBORDecodeError):
            async with self.session.post(_BASE + COMMIT_PATH, data=cbor2.dumps(groups)) as response:
                outcomes = cbor2.loads(await response.read())
        if not isinstance(outcomes, list) or not all(isinstance(o, str) for o in outcomes):
            raise NetworkError("the owner process answered something else")
        return outcomes

    async def forward(self, data: bytes) -> tuple[int, bytes]:
        """A signed message this worker does not handle, to the owner, whose signed reply goes back as it is."""
        with _owner_call():
            async with self.session.post(_BASE + MESSAGES_PATH, data=data,
                                         headers={"Content-Type": MEDIA_TYPE}) as response:
                return response.status, await response.read()

    async def proxy(self, request: web.Request) -> web.Response:
        """Every other path of the peer port (announcement, policy, health, metrics, revocation lists)."""
        headers = {name: request.headers[name] for name in _PASSED_HEADERS if name in request.headers}
        body = None
        if request.can_read_body:
            body = await request_body(request, MAX_PASSED_BODY, self.body_timeout)
            if len(body) > MAX_PASSED_BODY:
                return web.json_response({"error": "too-large", "reason": "the request body is too large"}, status=413)
        try:
            async with self.session.request(request.method, _BASE + request.path_qs, data=body,
                                            headers=headers) as response:
                content = await response.read()
                return web.Response(status=response.status, body=content,
                                    headers={"Content-Type": response.headers.get("Content-Type", "application/octet-stream")})
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            return web.json_response({"status": "unavailable", "reason": "the node's owner process is not reachable"},
                                     status=503)

    async def hand_tally(self, tally: list[Any]) -> None:
        """This worker's counts since the last time, for the owner's /metrics."""
        with _owner_call():
            async with self.session.post(_BASE + TALLY_PATH, data=cbor2.dumps(tally)) as response:
                await response.read()

    async def changes(self, after: int) -> int:
        """Waits (up to WAIT_FOR_CHANGE seconds) until the owner's generation passes ``after``; returns it."""
        with _owner_call(KeyError, ValueError, TypeError):
            async with self.session.get(_BASE + CHANGES_PATH, params={"after": str(after)},
                                        timeout=aiohttp.ClientTimeout(total=WAIT_FOR_CHANGE + 10)) as response:
                return int((await response.json())["generation"])


__all__ = ["PrimaryLink"]
