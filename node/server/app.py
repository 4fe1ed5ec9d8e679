"""The peer listener: one POST endpoint for signed messages, plus the announcement, the policy,
/health and /metrics.

Per request the path is: size limit → Endpoint.receive (all protocol checks,
no database work) → Dispatcher (handler of the message type, group commit) →
the signed reply leaves after that commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aiohttp
from aiohttp import web

from node.client import ANNOUNCEMENT_PATH, MESSAGES_PATH, read_bounded
from node.clock import ClockWatch
from node.errors import NodeError
from node.metrics import Metrics
from node.quiet import Throttled
from node.server.dispatch import Dispatcher
from protocol import MEDIA_TYPE, Endpoint, Error, ErrorCode, Incoming, RemoteProtocolError

log = logging.getLogger(__name__)
POLICY_PATH = "/iwlz/v1/policy"
REVOCATIONS_PATH = "/iwlz/v1/revocations"
METRICS_FRESH: Final = 1.0  # seconds a /metrics page is served again (Prometheus scrapes every 15-60 s)
DRAIN: Final = 4  # a too-large body up to this many times the limit is still read, to bind the error to it
MAX_REVOCATION_LIST = 512 * 1024
IN_FLIGHT_RULE: Final = "MEMBER-IN-FLIGHT"  # a member's message beyond its share in flight is refused by this rule


Forward = Callable[[bytes], Awaitable[tuple[int, bytes]]]


class MessageDesk:
    """POST of a signed message: verified, handed to its handler, answered with a signed reply.

    A worker process (node/relay) passes ``forward``: a message whose type it does not handle goes, as received,
    to the process that owns writes, and that process's reply is returned.
    """

    def __init__(self, *, endpoint: Endpoint, dispatcher: Dispatcher, metrics: Metrics, clock: Callable[[], float],
                 watch: ClockWatch, body_timeout: float, member_in_flight: int,
                 forward: Forward | None = None) -> None:
        self.endpoint = endpoint
        self.member_in_flight = member_in_flight
        self.in_flight: dict[str, int] = {}  # messages being handled, per member (the sender's DID)
        self.body_timeout = body_timeout
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.clock = clock
        self.watch = watch
        self.forward = forward
        self.refusals = Throttled(log)  # anyone may send junk: a line for each would fill the disk

    @web.middleware
    async def never_500(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """A bug is logged for its developers; the peer gets a signed ``unavailable``, never a 500."""
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except web.HTTPException:
            raise
        except Exception:  # noqa: BLE001
            log.exception("the peer listener failed on %s %s", request.method, request.path)
            error = RemoteProtocolError(ErrorCode.UNAVAILABLE, "the node could not handle this message")
            return _cose(self.endpoint.error_reply(b"", error, now=int(self.clock())).data, 503)

    async def message(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        now = int(self.clock())
        data = b""
        try:
            data = await read_message(request, self.endpoint.max_size, self.body_timeout)
            incoming = self.endpoint.receive(data, now=now)
        except RemoteProtocolError as exc:
            self.metrics.count_request("unknown", exc.code.value)
            hint = self.watch.hint(self.watch.saw(exc.issued_at, exc.sender)) if (
                exc.issued_at is not None and exc.sender is not None
                and exc.code in (ErrorCode.EXPIRED, ErrorCode.NOT_YET_VALID)) else ""
            self.refusals.note(exc.code.value, "refused a message (%s): %s%s", exc.code.value, exc.reason, hint)
            bound_to = exc.body if isinstance(exc, _Unreadable) else data
            reply = self.endpoint.error_reply(bound_to, exc, now=now)
            return _cose(reply.data, exc.status_hint)
        self.watch.saw(incoming.envelope.issued_at, incoming.envelope.sender)
        member = incoming.sender.did
        held = self.in_flight.get(member, 0)
        if held >= self.member_in_flight:
            return self._too_many(incoming, held, now)
        self.in_flight[member] = held + 1
        try:
            return await self._handle(incoming, data, now, started)
        finally:
            if (left := self.in_flight[member] - 1) > 0:
                self.in_flight[member] = left
            else:
                del self.in_flight[member]

    def _too_many(self, incoming: Incoming, held: int, now: int) -> web.Response:
        """A member with its share of messages in flight is answered at once, and its connection closed: at the
        connection limit, its requests under way would otherwise keep every other member out."""
        self.dispatcher.own_id(incoming)  # it did nothing: its id must not ride along with a later request
        kind = incoming.envelope.type
        self.metrics.count_request(kind, ErrorCode.UNAVAILABLE.value)
        # A line a minute per member (members are a bounded set: each holds a certificate of the network).
        self.refusals.note(f"member-in-flight {incoming.sender.did}",
                           "refused %s messages of a member that had %d in flight (%s)", kind, held, incoming.sender.did)
        error = Error(code=ErrorCode.UNAVAILABLE.value, rule=IN_FLIGHT_RULE,
                      reason=f"{held} of your messages are being handled: send more as they are answered")
        response = _cose(self.endpoint.reply(incoming, error, now=now).data, 503)
        response.force_close()
        return response

    async def _handle(self, incoming: Incoming, data: bytes, now: int, started: float) -> web.Response:
        if self.forward is not None and not self.dispatcher.handles(incoming.message):
            self.dispatcher.own_id(incoming)  # the owner remembers it; it must not ride along with a later request
            try:
                status, body = await self.forward(data)
            except NodeError as exc:
                log.warning("could not pass a %s message on: %s", incoming.envelope.type, exc)
                error = RemoteProtocolError(ErrorCode.UNAVAILABLE, "the node could not handle this message now")
                return _cose(self.endpoint.error_reply(data, error, now=now).data, 503)
            return _cose(body, status)
        status, body = await self.dispatcher.dispatch(incoming, now)
        self.metrics.observe_latency(incoming.envelope.type, time.perf_counter() - started)
        return _cose(body, status)


class PeerApp:
    def __init__(self, *, messages: MessageDesk, matrix: dict[str, Any],
                 announcement: Callable[[], bytes], health: Callable[[], dict[str, Any] | None],
                 adopt_revocation_list: Callable[[bytes], bool],
                 refresh_gauges: Callable[[], Awaitable[None]]) -> None:
        self.messages = messages
        self.metrics = messages.metrics
        self.matrix = matrix
        self.announcement = announcement
        self.health = health  # None while the node is not ready
        self.adopt_revocation_list = adopt_revocation_list
        self.refresh_gauges = refresh_gauges
        self._page: tuple[float, bytes] | None = None  # (made at, monotonic; /metrics as rendered)
        self._making_page = asyncio.Lock()
        self._policy_page: bytes | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.messages.endpoint.max_size, middlewares=[self.messages.never_500])
        app.router.add_post(MESSAGES_PATH, self.messages.message)
        app.router.add_get(ANNOUNCEMENT_PATH, self._announcement)
        app.router.add_get(POLICY_PATH, self._policy)
        app.router.add_post(REVOCATIONS_PATH, self._revocation_list)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def _announcement(self, request: web.Request) -> web.Response:
        return web.Response(body=self.announcement(), content_type="application/cose")

    async def _policy(self, request: web.Request) -> web.Response:
        if self._policy_page is None:  # the matrix does not change while the node runs: rendered once
            self._policy_page = json.dumps(self.matrix, indent=2, ensure_ascii=False).encode()
        return web.Response(body=self._policy_page, content_type="application/json")

    async def _revocation_list(self, request: web.Request) -> web.Response:
        """A root-signed revocation list, from anyone: it proves itself, and only a newer one changes anything."""
        data = await request_body(request, MAX_REVOCATION_LIST, self.messages.body_timeout)
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
        """Anyone who reaches the port may scrape: scrapes within METRICS_FRESH seconds share one page (a page reads
        the store's counts and renders every metric, ~1 ms; a junk message costs ~0.06)."""
        page = self._fresh_page()
        if page is None:
            async with self._making_page:  # scrapes that came meanwhile take the page the first one made
                page = self._fresh_page()
                if page is None:
                    await self.refresh_gauges()
                    page = self.metrics.render()
                    self._page = (time.monotonic(), page)
        return web.Response(body=page, headers={"Content-Type": self.metrics.content_type})

    def _fresh_page(self) -> bytes | None:
        """The /metrics page made less than METRICS_FRESH seconds ago, if there is one."""
        if self._page is None or time.monotonic() - self._page[0] >= METRICS_FRESH:
            return None
        return self._page[1]


class _Unreadable(RemoteProtocolError):
    """A message that cannot be taken whole; ``body`` is what the error reply is bound to."""

    def __init__(self, code: ErrorCode, reason: str, body: bytes) -> None:
        super().__init__(code, reason)
        self.body = body


# What reading a request's body raises when the sender stops halfway. aiohttp's stream raises RuntimeError
# ("Connection closed.") once the connection has gone (the guard made room, or the sender hung up): before, each
# logged a traceback.
CUT_SHORT = (aiohttp.ClientPayloadError, asyncio.IncompleteReadError, ConnectionError, RuntimeError)


def _deadline(request: web.Request, timeout: float) -> contextlib.AbstractAsyncContextManager[Any]:
    """A deadline for the rest of a request's body, when some of it is still to come. Almost every body comes
    whole with its headers: a timer for each costs ~4 µs a request and leaves a cancelled timer in the loop's
    heap until it would have come due."""
    return contextlib.nullcontext() if request.content.is_eof() else asyncio.timeout(timeout)


async def request_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """A request's body to its end, or its first ``limit + 1`` bytes (the caller refuses those), within ``timeout``
    seconds; one that is cut short or late is answered 400 with a JSON reason."""
    try:
        async with _deadline(request, timeout):
            return await read_bounded(request.content, limit)
    except TimeoutError:
        reason = f"the request body did not arrive within {timeout:g} s"
    except CUT_SHORT:
        reason = "the request body was cut short"
    raise web.HTTPBadRequest(text=json.dumps({"error": "malformed", "reason": reason}), content_type="application/json")


async def read_message(request: web.Request, limit: int, timeout: float) -> bytes:
    """The whole body, however many reads it takes to arrive; at most ``limit`` bytes, within ``timeout`` seconds.

    A body up to DRAIN times the limit is read to its end even when too large, so that the error is bound to
    the request's exact bytes (its SHA-256); beyond that the node stops reading and the error cannot be bound.
    A body that does not arrive in time is refused: a sender that trickled it held a handler for as long as it
    liked.
    """
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    declared = request.content_length
    if declared is not None and declared > limit * DRAIN:
        raise _Unreadable(ErrorCode.TOO_LARGE, f"message exceeds {limit} bytes", b"")
    chunks, size = [], 0
    try:
        async with _deadline(request, timeout):
            async for chunk in request.content.iter_any():
                size += len(chunk)
                if size > limit * DRAIN:
                    raise _Unreadable(ErrorCode.TOO_LARGE, f"message exceeds {limit} bytes", b"")
                chunks.append(chunk)
    except TimeoutError:
        raise _Unreadable(ErrorCode.MALFORMED, f"the message body did not arrive within {timeout:g} s", b"") from None
    except CUT_SHORT as exc:
        raise _Unreadable(ErrorCode.MALFORMED, "the message body was cut short", b"") from exc
    body = b"".join(chunks)
    if encoding not in ("identity", ""):
        raise _Unreadable(ErrorCode.UNSUPPORTED, f"Content-Encoding {encoding[:40]} is not supported", body)
    if size > limit:
        raise _Unreadable(ErrorCode.TOO_LARGE, f"message exceeds {limit} bytes", body)
    return body


def _cose(body: bytes, status: int) -> web.Response:
    return web.Response(body=body, status=status, headers={"Content-Type": MEDIA_TYPE})


__all__ = ["MessageDesk", "PeerApp", "POLICY_PATH"]
