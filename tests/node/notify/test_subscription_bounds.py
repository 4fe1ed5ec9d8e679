"""A member's subscriptions at a source: asking again for the same is the same subscription, there are at most
MAX_PER_MEMBER of them, and one change reaches a subscriber once however many of its subscriptions match it. Each
subscription made every change of the source's register plan one more notification to the same receiver: a
member subscribing in a loop made the source write a notification per subscription per record it stored."""

from __future__ import annotations

import json
from contextlib import closing

import pytest

from node.errors import PeerRefused
from protocol import Subscribe
from tests.node.kit import Network, put, sample

pytestmark = pytest.mark.asyncio
EVENT = "NIEUWE_BEMIDDELINGSPECIFICATIE_ZORGKANTOOR"


def _moved_to_5050() -> dict:
    moved = sample("bemiddelingen", 1)
    moved["overdracht"] = {"overdrachtID": "4b8e2f6a-9c1d-4e3f-8a5b-7c9d1e2f3a4b", "verantwoordelijkZorgkantoor": "5050",
                           "overdrachtDatum": "2026-10-01", "verhuisDatum": "2026-09-15",
                           "overdrachtspecificatie": [{"leveringsstatus": "1"}]}
    moved["bemiddelingspecificatie"][0]["uitvoerendZorgkantoor"] = "5252"
    return moved


async def test_the_same_subscription_asked_again_is_the_same_and_a_change_reaches_its_subscriber_once(network: Network) -> None:
    zk, zk5050 = await network.start("zk5151", "zk5050")
    ids = {(await zk5050.send_to_peer(zk.url, Subscribe(events=(EVENT,)))).message.ref for _ in range(5)}
    assert len(ids) == 1
    other = (await zk5050.send_to_peer(zk.url, Subscribe(events=(EVENT, "GEWIJZIGDE_BEMIDDELINGSPECIFICATIE_ZORGKANTOOR")))).message.ref
    assert other not in ids  # another set of events is another subscription, and it matches the same change
    assert len(await zk.store.fetchall("SELECT 1 FROM subscriptions")) == 2
    await put(zk, "Bemiddeling", _moved_to_5050())
    await network.settle()
    to_5050 = [r for r in await zk.outbox.list() if r["receiver_id"] == "5050" and r["event_type"] == EVENT]
    assert len(to_5050) == 1 and to_5050[0]["status"] == "delivered"
    assert len([n for n in await zk5050.inbox.list() if n["event_type"] == EVENT]) == 1


async def test_a_member_holds_a_bounded_number_of_subscriptions(network: Network, monkeypatch) -> None:
    """An organisation holds one subscription per set of events it asks for, up to MAX_PER_MEMBER; a client one per
    person whose records he follows, whatever events he asks for (his node asks with what each source announces
    and the matrix lets a client follow, which upgrades change)."""
    from itertools import combinations

    from node.notify import subscriptions

    zk, zk5050, client = await network.start("zk5151", "zk5050", "client")
    monkeypatch.setattr(subscriptions, "MAX_PER_MEMBER", 4)  # the matrix lets a zorgkantoor ask for 7 sets here
    for_a_zorgkantoor = [events for n in (1, 2, 3) for events in combinations(
        (EVENT, "GEWIJZIGDE_BEMIDDELINGSPECIFICATIE_ZORGKANTOOR", "VERWIJDERDE_BEMIDDELINGSPECIFICATIE_ZORGKANTOOR"), n)]
    for events in for_a_zorgkantoor[:4]:
        await zk5050.send_to_peer(zk.url, Subscribe(events=events))
    with pytest.raises(PeerRefused) as refused:
        await zk5050.send_to_peer(zk.url, Subscribe(events=for_a_zorgkantoor[4]))
    assert refused.value.code == "conflict" and "at most 4" in refused.value.reason
    bsn = "106658037"  # the client of tests/node/kit.py PARTIES
    followed = ("NIEUWE_BEMIDDELINGSPECIFICATIE_ZORGKANTOOR", "GEWIJZIGDE_BEMIDDELINGSPECIFICATIE_ZORGKANTOOR",
                "VERWIJDERDE_BEMIDDELINGSPECIFICATIE_ZORGKANTOOR", "NIEUWE_OVERDRACHT_ZORGKANTOOR",
                "GEWIJZIGDE_OVERDRACHT_ZORGKANTOOR", "VERWIJDERDE_OVERDRACHT_ZORGKANTOOR")
    for_him = [events for n in (1, 2, 3) for events in combinations(followed, n)]  # 41 sets of events
    ids = {(await client.send_to_peer(zk.url, Subscribe(events=events, bsn=bsn, endpoint=client.url))).message.ref
           for events in for_him}
    assert len(ids) == 1
    assert await zk.store.fetchall("SELECT subscription_id, events FROM subscriptions WHERE subscriber_did = ?",
                                   (client.identity.did,)) == [(ids.pop(), json.dumps(list(for_him[-1])))]
    assert len(await zk.store.fetchall("SELECT 1 FROM subscriptions")) == 5


async def test_a_client_whose_node_moved_keeps_one_subscription_at_its_new_address(network: Network) -> None:
    """A client's node on a laptop starts on another port: following again must not add a subscription (and a
    delivery to the old address that fails until it is a dead letter) at every start."""
    ciz, client = await network.start("ciz", "client")
    events = ("GEWIJZIGDE_INDICATIE_ZORGKANTOOR",)
    ids = {(await client.send_to_peer(ciz.url, Subscribe(events=events, bsn="106658037",
                                                         endpoint=f"http://127.0.0.1:{20000 + n}"))).message.ref
           for n in range(40)}
    assert len(ids) == 1
    assert await ciz.store.fetchall("SELECT endpoint FROM subscriptions") == [("http://127.0.0.1:20039",)]


async def test_two_subscriptions_of_a_client_made_before_his_first_counted_become_one_when_he_asks_again(
        network: Network) -> None:
    """A source before this version kept a subscription beside his first when his node asked with other events:
    the next time his node asks, the first made is the one kept, with the events asked now, and the other goes."""
    ciz, client = await network.start("ciz", "client")
    asked = ("GEWIJZIGDE_INDICATIE_ZORGKANTOOR", "VERWIJDERDE_INDICATIE_ZORGKANTOOR")
    first = (await client.send_to_peer(ciz.url, Subscribe(events=asked[:1], bsn="106658037", endpoint=client.url))).message.ref
    await ciz.store.write([(  # the one an earlier version made beside it
        "INSERT INTO subscriptions (subscription_id, subscriber_did, subscriber_org, receiver_id_type, receiver_id, events, "
        "created_at, bsn, endpoint, subscriber_cert, subscriber_until) SELECT 'made-beside', subscriber_did, subscriber_org, "
        "receiver_id_type, receiver_id, ?, created_at + 1, bsn, endpoint, subscriber_cert, subscriber_until "
        "FROM subscriptions WHERE subscription_id = ?", (json.dumps(list(asked[1:])), first), False)])
    again = (await client.send_to_peer(ciz.url, Subscribe(events=asked, bsn="106658037", endpoint=client.url))).message.ref
    assert again == first
    assert await ciz.store.fetchall("SELECT subscription_id, events FROM subscriptions") == [(first, json.dumps(list(asked)))]
    entries = await ciz.store.fetchall("SELECT event, result FROM audit WHERE event LIKE 'subscription.%' ORDER BY seq")
    assert entries[-2:] == [("subscription.create", "moved"), ("subscription.delete", "merged")]


async def test_a_subscribe_and_a_write_read_subscriptions_through_indexes(network: Network) -> None:
    """Every client may follow his records at a source: neither a subscribe (what its member holds) nor the planning
    of a write (the organisations' subscriptions) may read every client's subscription."""
    import sqlite3

    ciz, zk = await network.start("ciz", "zk5151")
    reads: list[tuple[str, tuple]] = []
    fetchall = ciz.store.fetchall

    async def spy(sql: str, params: tuple = ()) -> list:
        reads.append((sql, tuple(params)))
        return await fetchall(sql, params)

    ciz.store.fetchall = spy  # type: ignore[method-assign]
    await zk.send_to_peer(ciz.url, Subscribe(events=("NIEUWE_INDICATIE_ZORGKANTOOR",)))
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    ciz.store.fetchall = fetchall  # type: ignore[method-assign]
    mine = {(sql, params) for sql, params in reads if "FROM subscriptions" in sql}
    assert len({sql for sql, _ in mine}) >= 2  # the subscribe's lookup and the write's planning
    with closing(sqlite3.connect(ciz.home.database_path)) as db, db:
        for sql, params in mine:
            plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
            # a search, or the scan of a partial index that holds only what the query wants
            assert all(step.startswith("SEARCH") or "subscriptions_of_organisations" in step for step in plan), plan


async def test_asking_for_what_another_member_holds_touches_nothing_of_it(network: Network) -> None:
    """The same events asked by another member are that member's own subscription: a subscription is found (and its
    endpoint moved) by the verified sender only."""
    ciz, zk, zk5050 = await network.start("ciz", "zk5151", "zk5050")
    events = ("NIEUWE_INDICATIE_ZORGKANTOOR",)
    mine = (await zk.send_to_peer(ciz.url, Subscribe(events=events))).message.ref
    theirs = (await zk5050.send_to_peer(ciz.url, Subscribe(events=events))).message.ref
    assert mine != theirs
    rows = await ciz.store.fetchall("SELECT subscription_id, subscriber_did FROM subscriptions ORDER BY subscriber_did")
    assert sorted(map(tuple, rows)) == sorted([(mine, zk.identity.did), (theirs, zk5050.identity.did)])
