"""One member cannot take every connection a node has: what it may have in flight at once is bounded.

A member whose software runs away (a retry loop, a connection per query
that is never reused) sends faster than the node answers. Each of its
requests holds a connection while it is handled, and the connection guard
never pushes out a connection in the middle of a request: at the
connection limit, every other member's new connection was refused. Now a
member's message beyond its share of messages in flight is answered at
once with a signed ``unavailable`` and its connection closed, so the
others still get in; what it already had in flight is answered as usual.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import closing
from typing import Any

import aiohttp
import pytest

from node.client import MESSAGES_PATH
from node.errors import ConfigError
from node.home import NodeConfig
from node.service import Node
from protocol import MEDIA_TYPE, Endpoint, Error, Query
from tests.node.kit import IND0, Network, sample

SHARE = 8
CONNECTIONS = 40  # the node's connection limit (at least 16)
RUNAWAY = 60  # the runaway member's requests at once, each on a connection of its own


def _query() -> Query:
    return Query(template="QIR-0001-ZKi", params={"wlzIndicatieID": IND0, "uzovi": "5151"}, evidence=(), history=False)


def _hold(node: Node, sender: str, gate: asyncio.Event) -> None:
    """Queries from ``sender`` wait for ``gate`` before they are handled: a node slower than its runaway member."""
    handlers: dict[type, Callable[..., Awaitable[Any]]] = node.dispatcher._handlers  # noqa: SLF001
    original = handlers[Query]

    async def held(incoming: Any, now: int) -> Any:
        if incoming.sender.did == sender:
            await gate.wait()
        return await original(incoming, now)

    handlers[Query] = held


async def _post(url: str, data: bytes) -> tuple[int, bytes] | str:
    connector = aiohttp.TCPConnector(force_close=True)
    try:
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.post(url, data=io.BytesIO(data), headers={"Content-Type": MEDIA_TYPE}) as response:
                return response.status, await response.read()
    except (aiohttp.ClientError, ConnectionError) as exc:
        return exc.__class__.__name__


def _audit_entries(node: Node, actor: str) -> int:
    """The queries of ``actor`` the node's audit log names (answered or denied)."""
    with closing(sqlite3.connect(node.home.database_path)) as db, db:
        return int(db.execute("SELECT count(*) FROM audit WHERE actor_did = ? AND event LIKE 'query %'",
                              (actor,)).fetchone()[0])


@pytest.mark.asyncio
async def test_a_runaway_member_keeps_no_other_member_out(network: Network, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="node.server.app")
    ciz, runaway, other = await network.start("ciz", "zk5151", "zk5050", max_connections=CONNECTIONS,
                                               member_in_flight=SHARE)
    await ciz.registers.put("WlzIndicatie", sample("wlzIndicaties", 0), actor=ciz.actor, now=ciz.now())
    gate = asyncio.Event()
    _hold(ciz, runaway.identity.did, gate)
    sender: Endpoint = runaway.endpoint
    url = ciz.url + MESSAGES_PATH
    before = {did: _audit_entries(ciz, did) for did in (runaway.identity.did, other.identity.did)}
    sent = [sender.send(_query(), to=ciz.identity.did, now=ciz.now()) for _ in range(RUNAWAY)]
    flood = [asyncio.create_task(_post(url, outgoing.data)) for outgoing in sent]
    try:
        for _ in range(100):  # until all but its share are answered or turned away (before: never; 5 s at most)
            if sum(1 for t in flood if t.done()) >= RUNAWAY - SHARE:
                break
            await asyncio.sleep(0.05)

        # Another member's query, on a new connection, gets in and is answered while the runaway's share is held.
        # (This zorgkantoor may not read that indicatie: a signed denial is an answer too.)
        asked = other.endpoint.send(Query(template="QIR-0001-ZKi", params={"wlzIndicatieID": IND0, "uzovi": "5050"},
                                          evidence=(), history=False), to=ciz.identity.did, now=ciz.now())
        answer = await asyncio.wait_for(_post(url, asked.data), 10)
        assert isinstance(answer, tuple), answer
        reply = other.endpoint.receive_reply(answer[1], asked, now=ciz.now()).message
        assert not isinstance(reply, Error) or reply.code == "denied", reply

        turned_away = [(outgoing, t.result()) for outgoing, t in zip(sent, flood) if t.done()]
        refused = [(outgoing, r) for outgoing, r in turned_away if isinstance(r, tuple)]
        assert refused, turned_away  # some got a signed answer; the rest found no room at all
        for outgoing, (status, body) in refused:
            assert status == 503
            reply = sender.receive_reply(body, outgoing, now=ciz.now()).message
            assert isinstance(reply, Error) and reply.code == "unavailable" and reply.rule == "MEMBER-IN-FLIGHT"
        # A refusal writes nothing, and what the runaway has under way is not done yet.
        assert _audit_entries(ciz, runaway.identity.did) == before[runaway.identity.did]
        assert _audit_entries(ciz, other.identity.did) == before[other.identity.did] + 1
    finally:
        gate.set()
    held = await asyncio.gather(*flood)
    answered = [r for r in held if isinstance(r, tuple) and r[0] == 200]
    assert len(answered) == SHARE  # what it had in flight is answered as usual
    # Its operator's name for it, once (a line a minute), and no error.
    lines = [r.getMessage() for r in caplog.records if "in flight" in r.getMessage()]
    assert len(lines) == 1 and runaway.identity.did in lines[0], lines
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("share", [0, -1, "128", 1.5])
def test_a_share_that_is_not_a_positive_count_is_refused(share: Any) -> None:
    config = NodeConfig(role="ciz", name="CIZ", identifiers={"kvk": "62253778"}).to_json()
    with pytest.raises(ConfigError, match="member_in_flight"):
        NodeConfig.from_json(config | {"member_in_flight": share})
    assert NodeConfig.from_json(config | {"member_in_flight": 1}).member_in_flight == 1
