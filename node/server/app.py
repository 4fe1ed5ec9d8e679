"""The peer listener: one POST endpoint for signed messages, plus the announcement, the policy,
/health and /metrics.

Per request the path is: size limit → Endpoint.receive (all protocol checks,
no database work) → Dispatcher (handler of the message type, group commit) →
the signed reply leaves after that commit.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from node.client import ANNOUNCEMENT_PATH, MESSAGES_PATH
from node.metrics import Metrics
from node.server.dispatch import Dispatcher
from protocol import MEDIA_TYPE, Endpoint, ErrorCode, RemoteProtocolError

log = logging.getLogger(__name__)
POLICY_PATH = "/iwlz/v1/policy"
REVOCATIONS_PATH = "/iwlz/v1/revocations"
MAX_REVOCATION_LIST = 512 * 1024


class PeerApp:
    def __init__(self, *, endpoint: Endpoint, dispatcher: Dispatcher, metrics: Metrics, matrix: dict[str, Any],
                 announcement: Callable[[], bytes], health: Callable[[], dict[str, Any] | None],
                 adopt_revocation_list: Callable[[bytes], bool],
                 refresh_gauges: Callable[[], Awaitable[None]], clock: Callable[[], float]) -> None:
        self.endpoint = endpoint
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.matrix = matrix
        self.announcement = announcement
        self.health = health  # None while the node is not ready
        self.adopt_revocation_list = adopt_revocation_list
        self.refresh_gauges = refresh_gauges
        self.clock = clock

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.endpoint.max_size)
        app.router.add_post(MESSAGES_PATH, self._message)
        app.router.add_get(ANNOUNCEMENT_PATH, self._announcement)
        app.router.add_get(POLICY_PATH, self._policy)
        app.router.add_post(REVOCATIONS_PATH, self._revocation_list)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def _announcement(self, request: web.Request) -> web.Response:
        return web.Response(body=self.announcement(), content_type="application/cose")

    async def _policy(self, request: web.Request) -> web.Response:
        return web.json_response(self.matrix, dumps=lambda v: json.dumps(v, indent=2, ensure_ascii=False))

    async def _revocation_list(self, request: web.Request) -> web.Response:
        """A root-signed revocation list, from anyone: it proves itself, and only a newer one changes anything."""
        data = await request.content.read(MAX_REVOCATION_LIST + 1)
        if len(data) > MAX_REVOCATION_LIST:
            return web.json_response({"error": "too-large", "reason": "a revocation list is at most 512 KiB"}, status=413)
        adopted = self.adopt_revocation_list(data)
        return web.json_response({"adopted": adopted})

    async def _health(self, request: web.Request) -> web.Response:
        details = self.health()
        if details is None:
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ready", **details})

    async def _metrics(self, request: web.Request) -> web.Response:
        await self.refresh_gauges()
        return web.Response(body=self.metrics.render(), headers={"Content-Type": self.metrics.content_type})

    async def _message(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        limit = self.endpoint.max_size
        now = int(self.clock())
        if request.content_length is not None and request.content_length > limit:
            data = b""
        else:
            data = await request.content.read(limit + 1)
        try:
            if len(data) > limit or (request.content_length or 0) > limit:
                raise RemoteProtocolError(ErrorCode.TOO_LARGE, f"message exceeds {limit} bytes")
            incoming = self.endpoint.receive(data, now=now)
        except RemoteProtocolError as exc:
            self.metrics.count_request("unknown", exc.code.value)
            log.info("refused a message (%s): %s", exc.code.value, exc.reason)
            reply = self.endpoint.error_reply(data, exc, now=now)
            return _cose(reply.data, exc.status_hint)
        status, body = await self.dispatcher.dispatch(incoming, now)
        self.metrics.observe_latency(incoming.envelope.type, time.perf_counter() - started)
        return _cose(body, status)


def _cose(body: bytes, status: int) -> web.Response:
    return web.Response(body=body, status=status, headers={"Content-Type": MEDIA_TYPE})


__all__ = ["PeerApp", "POLICY_PATH"]
