"""The enrolment service: an HTTP endpoint where a node with a join token obtains its certificate.

POST /iwlz/v1/enrol takes the node's signed request (application/cose) and answers application/cbor
{"certificate": bytes, "revocations": bytes | null}, or a refusal {"code", "reason"} (JSON, 403). When an
enrolment revoked a predecessor, the new revocation list is also pushed to the ``push`` peers (the bootstrap
nodes), which adopt it at once and hand it on (live revocation).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web

from keys import cbor
from keys.enrolment import MAX_REQUEST_SIZE, EnrolmentRefused
from node.enrol.authority import EnrolmentAuthority
from node.errors import ConfigError
from node.server.connections import Listener

log = logging.getLogger("iwlz.enrol")
PUSH_ATTEMPTS = 5


class EnrolmentService:
    def __init__(self, authority: EnrolmentAuthority, *, push: list[str] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.authority = authority
        self.push = [u.rstrip("/") for u in push or []]
        self.clock = clock
        self._pushes: set[asyncio.Task[None]] = set()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_SIZE)
        app.router.add_post("/iwlz/v1/enrol", self._enrol)
        app.router.add_get("/health", self._health)
        app.on_cleanup.append(self._cancel_pushes)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "root": self.authority.root})

    async def _enrol(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _refusal(413, "too-large", "an enrolment request is at most 16 KiB")
        try:
            enrolled = await asyncio.to_thread(self.authority.enrol, body, now=int(self.clock()))
        except EnrolmentRefused as exc:
            log.info("refused an enrolment: %s", exc.reason)
            return _refusal(403, exc.code, exc.reason)
        if enrolled.revoked and enrolled.revocation_list is not None:
            log.info("enrolment replaced %d earlier certificate(s); pushing the revocation list", len(enrolled.revoked))
            for url in self.push:
                task = asyncio.create_task(self._push(url, enrolled.revocation_list))
                self._pushes.add(task)
                task.add_done_callback(self._pushes.discard)
        answer = {"certificate": enrolled.certificate, "revocations": enrolled.revocation_list}
        return web.Response(body=cbor.encode(answer), content_type="application/cbor")

    async def _push(self, url: str, data: bytes) -> None:
        """Hand the list to a bootstrap peer, trying again while it is not up (it may be restarting)."""
        for attempt in range(PUSH_ATTEMPTS):
            try:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
                    async with session.post(url + "/iwlz/v1/revocations", data=data,
                                            headers={"Content-Type": "application/cose"}) as response:
                        if response.status == 200:
                            return
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            await asyncio.sleep(2 ** attempt)
        log.warning("could not push the revocation list to %s", url)

    async def _cancel_pushes(self, app: web.Application) -> None:
        for task in list(self._pushes):
            task.cancel()
        await asyncio.gather(*self._pushes, return_exceptions=True)


def _refusal(status: int, code: str, reason: str) -> web.Response:
    return web.json_response({"code": code, "reason": reason}, status=status)


async def serve(service: EnrolmentService, host: str, port: int) -> tuple[Listener, int]:
    """Listen with the peer listener's bounds (connection cap, header timeout): the service faces the network."""
    listener = Listener(service.app(), max_connections=256, header_timeout=10.0, logger_name="iwlz.enrol.http")
    try:
        return listener, await listener.start(host, port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
