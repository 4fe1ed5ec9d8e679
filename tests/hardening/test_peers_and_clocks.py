"""A peer that never answers holds up only what is meant for it; a clock that is off is named, with how far."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import aiohttp
import pytest

from node.errors import NetworkError
from node.service import Node
from protocol import Query
from tests.node.kit import IND0, BlackHole, Network, put, sample

pytestmark = pytest.mark.asyncio


async def test_a_receiver_that_never_answers_does_not_hold_up_the_others(network: Network) -> None:
    ciz, zk, zk5050 = await network.start("ciz", "zk5151", "zk5050")
    port = int(zk5050.url.rsplit(":", 1)[1])
    await zk5050.stop()
    network.nodes.pop("zk5050")
    hole = BlackHole()
    await hole.start(port)  # 5050's address now takes everything and says nothing
    try:
        await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 2))  # region 5050: into the black hole
        await asyncio.sleep(0.2)  # that delivery is under way and hangs
        for i in (0, 1):  # region 5151, one after another
            started = time.monotonic()
            await put(ciz, "WlzIndicatie", sample("wlzIndicaties", i))
            while len([r for r in await zk.inbox.list()]) <= i:
                assert time.monotonic() - started < 1.0, "a healthy receiver waited on a black-holed one"
                await asyncio.sleep(0.01)
        rows = {r["receiver_id"]: r["status"] for r in await ciz.outbox.list()}
        assert rows == {"5050": "pending", "5151": "delivered"}
    finally:
        await network.stop()
        network.nodes.clear()
        await hole.close()


async def start_with_clock(network: Network, name: str, offset: float) -> Node:
    home = network.home(name)
    node = Node(home, mdns=False, gossip_interval=0, clock=lambda: time.time() + offset)
    await node.start()
    network.nodes[name] = node
    return node


@pytest.mark.parametrize("offset,words", [(600, "600 s ahead of"), (-200, "200 s behind")])
async def test_a_node_whose_clock_is_off_is_told_how_far(network: Network, offset: float, words: str) -> None:
    (ciz,) = await network.start("ciz")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    skewed = await start_with_clock(network, "zk5151", offset)
    with pytest.raises(NetworkError) as info:
        await skewed.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND0, "uzovi": "5151"}, [])
    # Whole seconds of two clocks: a second boundary between the readings may make 200 read 199.
    said = re.search(r"this node's clock is about (\d+) s (ahead of|behind) the peer's", str(info.value))
    expected_seconds, expected_direction = words.split(" s ")
    assert said is not None and said.group(2) == expected_direction, str(info.value)
    assert abs(int(said.group(1)) - int(expected_seconds)) <= 2, str(info.value)
    estimate = skewed.clock_watch.offset()
    assert estimate is not None and abs(estimate + offset) < 5  # the peers are that far the other way
    async with aiohttp.ClientSession() as http:
        async with http.get(skewed.url + "/health") as r:
            assert abs((await r.json())["clock_offset_seconds"] + offset) < 5
        async with http.get(skewed.url + "/metrics") as r:
            assert "iwlz_clock_offset_seconds" in await r.text()


async def test_the_receiving_side_sees_the_offset_too(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    skewed = await start_with_clock(network, "zk5151", 45)  # within the window: requests pass, the offset shows
    query = Query(template="RECORD-STATUS", params={"kind": "WlzIndicatie", "id": IND0}, evidence=(), history=False)
    try:
        await skewed.client.request(ciz.url, query, to=ciz.identity.did)
    except NetworkError:
        pass
    assert ciz.clock_watch.offset() is not None and ciz.clock_watch.offset() > 30


async def test_one_member_whose_clock_is_off_does_not_make_a_node_doubt_its_own(network: Network,
                                                                                caplog: pytest.LogCaptureFixture) -> None:
    """The offset is the median over the peers heard from, one sample each: a member whose clock is off (or that
    sends requests signed long before) may send as many as it likes, and the node does not tell its operator that
    its own clock is wrong, which he might then "fix"."""
    ciz, zk5050, cak = await network.start("ciz", "zk5050", "cak")
    skewed = await start_with_clock(network, "zk5151", -20)  # within the window both ways: its queries are answered
    query = Query(template="RECORD-STATUS", params={"kind": "WlzIndicatie", "id": IND0}, evidence=(), history=False)
    for member in (zk5050, cak):
        await member.client.request(ciz.url, query, to=ciz.identity.did)
    with caplog.at_level(logging.WARNING, logger="node.clock"):
        for _ in range(100):
            await skewed.client.request(ciz.url, query, to=ciz.identity.did)
    estimate = ciz.clock_watch.offset()
    assert estimate is not None and abs(estimate) < 5
    # (The late member itself is told, rightly, that its clock is behind its one peer's.)
    assert not [r for r in caplog.records if "ahead of its peers' clocks" in r.getMessage()]
    # Most of its peers behind is the node ahead: then it says so.
    for name in ("zk5252", "za_a"):
        late = await start_with_clock(network, name, -20)
        await late.client.request(ciz.url, query, to=ciz.identity.did)
    estimate = ciz.clock_watch.offset()
    assert estimate is not None and estimate < -15
