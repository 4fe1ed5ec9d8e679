"""The owner's side of the hand-over: a worker's writes, committed in the owner's group commit and audit chain.

Served on a Unix socket only the node's user may open (the same user that can open the database file, so the
socket gives no one more than they already have). The replay guard is the owner's: a message id that another
worker or the owner itself accepted first is refused here, before anything of the request is written.
"""

from __future__ import annotations

import asyncio
import logging

import cbor2
from aiohttp import web

from node.client import read_bounded
from node.errors import NodeError, ReplayedElsewhere
from node.metrics import Metrics
from node.server.dispatch import REMEMBER_ID
from node.store import Statement, Store
from node.store.audit import from_portable
from node.store.relayed import COMMITTED, FAILED, REPLAYED
from protocol import ReplayGuard

log = logging.getLogger(__name__)
COMMIT_PATH = "/internal/commit"
TALLY_PATH = "/internal/tally"
CHANGES_PATH = "/internal/changes"
MAX_HAND_OVER = 64 * 1024 * 1024
WAIT_FOR_CHANGE = 25.0  # seconds a worker's question "anything new?" is held open


class WriterDesk:
    def __init__(self, *, store: Store, replay: ReplayGuard, metrics: Metrics) -> None:
        self.store = store
        self.replay = replay
        self.metrics = metrics
        self.generation = 0
        self._changed = asyncio.Event()
        self._closing = False

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(COMMIT_PATH, self._commit)
        app.router.add_get(CHANGES_PATH, self._changes)
        app.router.add_post(TALLY_PATH, self._tally)

    def close(self) -> None:
        """Answer every question held open now, so that stopping the listener does not wait for them."""
        self._closing = True
        self._changed.set()

    def changed(self) -> None:
        """Trust or identity changed here: workers read them again from the home."""
        self.generation += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def _commit(self, request: web.Request) -> web.Response:
        data = await read_bounded(request.content, MAX_HAND_OVER)
        try:
            groups = cbor2.loads(data)
            statements = [[from_portable(item) for item in group] for group in groups]
        except (cbor2.CBORDecodeError, TypeError, ValueError, NodeError):
            log.error("a worker handed over writes that could not be read")
            return web.Response(status=400, body=cbor2.dumps([]))
        outcomes = await asyncio.gather(*(self._one(group) for group in statements))
        return web.Response(body=cbor2.dumps(list(outcomes)), content_type="application/cbor")

    async def _one(self, statements: list[Statement]) -> str:
        ids = [tuple(params) for sql, params, many in statements if sql == REMEMBER_ID and not many]
        if any((sender, message_id) in self.replay for sender, message_id, _ in ids):
            return REPLAYED
        self.replay.load(ids)  # type: ignore[arg-type]
        try:
            await self.store.write(statements)
        except ReplayedElsewhere:
            return REPLAYED
        except NodeError:
            return FAILED
        return COMMITTED

    async def _tally(self, request: web.Request) -> web.Response:
        """A worker's counts for /metrics, so that the owner's shows every answer the node gave."""
        try:
            self.metrics.add_tally(cbor2.loads(await read_bounded(request.content, MAX_HAND_OVER)))
        except (cbor2.CBORDecodeError, ValueError):
            return web.Response(status=400)
        return web.Response(status=204)

    async def _changes(self, request: web.Request) -> web.Response:
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            after = 0
        if after == self.generation and not self._closing:
            try:
                await asyncio.wait_for(self._changed.wait(), WAIT_FOR_CHANGE)
            except asyncio.TimeoutError:
                pass
        return web.json_response({"generation": self.generation})


__all__ = ["WriterDesk", "COMMIT_PATH", "CHANGES_PATH", "TALLY_PATH"]

