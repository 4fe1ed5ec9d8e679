"""A client's subscription at a source rests on the certificate he subscribed with. His node is in no peer table, so
nothing but the subscription says the source may send to it: when that certificate ends, nothing more is sent by
it and it ends; his node, taking up a renewed certificate, follows again, and keeps hearing of his changes."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

import pytest

from node.service import Node
from tests.node.kit import Network, put, sample

pytestmark = pytest.mark.asyncio
HOUR = 3600


async def follows(client: Node) -> list[dict[str, object]]:
    return await client.client_view.follow(endpoint=client.url, allowed=client.subscriptions.matrix["allowed"])


async def his_indicatie_changes(ciz: Node, einddatum: str) -> None:
    data = sample("wlzIndicaties", 0)
    data["einddatum"] = einddatum
    await put(ciz, "WlzIndicatie", data)


async def following_at_ciz_and_his_zorgkantoor(network: Network) -> tuple[Node, Node, Node, dict[str, str]]:
    """CIZ and his zorgkantoor hold a record of his, and his node follows his records at both."""
    ciz, zk, client = await network.start("ciz", "zk5151", "client")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await put(zk, "Bemiddeling", sample("bemiddelingen", 0))
    await network.settle()
    followed = {f["organisation"]: f["subscription_id"] for f in await follows(client) if f.get("subscription_id")}
    assert set(followed) == {"CIZ", "Zorgkantoor Noord"}
    return ciz, zk, client, followed


async def short_lived(network: Network, client: Node, hours: int) -> int:
    """His node takes up a certificate that ends in ``hours``; returns when it ends."""
    member = network.net.issue(client.home, now=int(time.time()), valid_for=hours * HOUR)
    assert await client.reload_certificate()
    return member.expires


async def test_nothing_is_sent_by_a_clients_subscription_once_his_certificate_ended(network: Network) -> None:
    """Attack on what a source keeps: his certificate ended (not renewed: he left the network, or his node was
    given up). The subscription stayed, and each change of his records was sealed to that key and sent to whatever
    listens at the endpoint, and tried again for as long as its reply (signed under an ended certificate) failed."""
    ciz, client = await network.start("ciz", "client")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await network.settle()
    ends = await short_lived(network, client, 2)
    assert [f["organisation"] for f in await follows(client) if f.get("subscription_id")] == ["CIZ"]
    assert await ciz.store.fetchall("SELECT subscriber_until FROM subscriptions") == [(ends,)]
    ciz.clock = lambda: time.time() + 3 * HOUR  # his certificate has ended
    await his_indicatie_changes(ciz, "2027-06-30")
    await network.settle()
    assert [r for r in await ciz.outbox.list() if r["receiver_id"] == client.identity.did] == []
    assert await client.store.fetchall("SELECT 1 FROM inbox") == []
    assert await ciz.end_subscriptions_of_ended_certificates() == 1
    assert await ciz.store.fetchall("SELECT 1 FROM subscriptions") == []


async def test_his_node_follows_again_when_it_takes_up_a_renewed_certificate(network: Network) -> None:
    ciz, client = await network.start("ciz", "client")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await network.settle()
    first = await short_lived(network, client, 2)
    [followed] = [f for f in await follows(client) if f["organisation"] == "CIZ"]
    renewed = await short_lived(network, client, 24 * 365)
    assert renewed > first
    for _ in range(200):  # his node subscribes again in the background: the same subscription, on the new certificate
        rows = await ciz.store.fetchall("SELECT subscription_id, subscriber_until, subscriber_cert FROM subscriptions")
        if rows and rows[0][1] == renewed:
            break
        await asyncio.sleep(0.05)
    assert rows == [(followed["subscription_id"], renewed, client.member.cert_id)]
    for node in (ciz, client):  # the first certificate has ended; the renewed one holds
        node.clock = lambda: time.time() + 3 * HOUR
    await his_indicatie_changes(ciz, "2027-06-30")
    await network.settle()
    assert await client.store.fetchall("SELECT event_type, subscription_id FROM inbox") == [
        ("GEWIJZIGDE_INDICATIE_ZORGKANTOOR", followed["subscription_id"])]
    assert await ciz.end_subscriptions_of_ended_certificates() == 0


async def test_a_node_that_follows_nothing_subscribes_nowhere_when_it_takes_up_a_renewed_certificate(
        network: Network) -> None:
    ciz, client = await network.start("ciz", "client")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await network.settle()
    await short_lived(network, client, 24 * 365)
    await network.settle()
    assert await ciz.store.fetchall("SELECT 1 FROM subscriptions") == []


async def test_his_node_started_again_elsewhere_and_renewed_meanwhile_is_followed_there(network: Network) -> None:
    """His node on a laptop: stopped, its certificate renewed in its home meanwhile, started on another port. It
    subscribes again at its start, so the source sends to where it is now and by the certificate it holds now;
    before, his changes went to the old port (and, after the old certificate ended, nowhere) until he followed
    again by hand."""
    ciz, client = await network.start("ciz", "client")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await network.settle()
    await follows(client)
    await client.stop()
    renewed = network.net.issue(client.home, now=int(time.time()), valid_for=365 * 24 * HOUR)
    again = Node(client.home, bootstrap=[ciz.url], mdns=False, gossip_interval=0)
    await again.start()
    network.nodes["client"] = again
    assert again.url != client.url
    for _ in range(200):  # in the background
        rows = await ciz.store.fetchall("SELECT endpoint, subscriber_until FROM subscriptions")
        if rows == [(again.url, renewed.expires)]:
            break
        await asyncio.sleep(0.05)
    assert rows == [(again.url, renewed.expires)]
    await his_indicatie_changes(ciz, "2027-06-30")
    await network.settle()
    assert [r[0] for r in await again.store.fetchall("SELECT event_type FROM inbox")] == ["GEWIJZIGDE_INDICATIE_ZORGKANTOOR"]


async def test_a_subscription_from_before_schema_21_keeps_his_certificates_end_once_his_node_follows_again(
        network: Network) -> None:
    ciz, client = await network.start("ciz", "client")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await network.settle()
    await follows(client)
    await ciz.store.write([("UPDATE subscriptions SET subscriber_until = NULL", (), False)])  # as schema 21 found it
    await follows(client)  # as his node does at its next start
    assert await ciz.store.fetchall("SELECT subscriber_until FROM subscriptions") == [(client.member.expires,)]


async def test_he_follows_while_ciz_is_away_and_his_node_subscribes_there_at_its_next_start(network: Network) -> None:
    """What he asked his node stays asked: following while no source answers subscribes nowhere, and his node
    subscribes at its next start."""
    ciz, client = await network.start("ciz", "client")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await network.settle()
    port = int(ciz.url.rsplit(":", 1)[1])
    await ciz.stop()
    assert [f for f in await follows(client) if f.get("subscription_id")] == []
    ciz = Node(ciz.home, port=port, mdns=False, gossip_interval=0)
    await ciz.start()
    network.nodes["ciz"] = ciz
    await client.stop()
    again = Node(client.home, bootstrap=[ciz.url], mdns=False, gossip_interval=0)
    await again.start()
    network.nodes["client"] = again
    for _ in range(200):  # in the background
        rows = await ciz.store.fetchall("SELECT subscriber_did, endpoint FROM subscriptions")
        if rows:
            break
        await asyncio.sleep(0.05)
    assert rows == [(again.identity.did, again.url)]


async def test_he_unfollows_and_a_source_away_then_is_asked_again_at_his_nodes_next_start(network: Network) -> None:
    ciz, zk, client, followed = await following_at_ciz_and_his_zorgkantoor(network)
    port = int(zk.url.rsplit(":", 1)[1])
    await zk.stop()
    ended = {e["organisation"]: e["ended"] for e in await client.client_view.unfollow()}
    assert ended == {"CIZ": True, "Zorgkantoor Noord": False}
    assert await ciz.store.fetchall("SELECT 1 FROM subscriptions") == []
    zk = Node(zk.home, port=port, mdns=False, gossip_interval=0)
    await zk.start()
    network.nodes["zk5151"] = zk
    assert await zk.store.fetchall("SELECT subscription_id FROM subscriptions") == [(followed["Zorgkantoor Noord"],)]
    await client.stop()
    again = Node(client.home, bootstrap=[ciz.url], mdns=False, gossip_interval=0)
    await again.start()
    network.nodes["client"] = again
    for _ in range(200):  # in the background: the one not ended is asked again, and nothing is followed again
        if not await zk.store.fetchall("SELECT 1 FROM subscriptions"):
            break
        await asyncio.sleep(0.05)
    assert await zk.store.fetchall("SELECT 1 FROM subscriptions") == []
    assert await ciz.store.fetchall("SELECT 1 FROM subscriptions") == []
    assert await again.store.fetchall("SELECT name FROM settings WHERE name LIKE 'client.subscribed.%'") == []


async def test_he_unfollows_at_a_source_that_moved_to_a_new_key_since_he_followed(network: Network) -> None:
    """His node kept where it subscribed by the source's did: a source that moved to a new key since was asked to end
    it at a did no peer table names any more, in vain at every start. What his node kept moves with the key."""
    ciz, zk, client, followed = await following_at_ciz_and_his_zorgkantoor(network)
    old_did = zk.identity.did
    zk.home.rotate_key()
    network.net.issue(zk.home, now=int(time.time()), valid_for=3600)
    assert await zk.reload_certificate()
    await client.learn_from(zk.url, source="bootstrap")  # his node hears the new announcement (gossip, in a network)
    assert client.peers.get(zk.identity.did) is not None and client.peers.get(old_did) is None
    ended = {e["organisation"]: e["ended"] for e in await client.client_view.unfollow()}
    assert ended == {"CIZ": True, "Zorgkantoor Noord": True}
    assert await zk.store.fetchall("SELECT 1 FROM subscriptions") == []
    sources = await client.store.fetchall("SELECT value FROM settings WHERE name = 'client.sources'")
    assert old_did not in sources[0][0] and zk.identity.did in sources[0][0]


async def test_his_node_following_again_after_a_source_announced_one_event_more_holds_one_subscription_there(
        network: Network) -> None:
    """Attack on following again: his node followed CIZ by the events CIZ announced then; CIZ, upgraded, announces
    one more a client may follow. At his node's next start it subscribed with the new set, which CIZ took for a
    subscription beside the first: every change of his indicatie reached him twice, and each such upgrade added
    one more (up to a member's limit, where a follow is refused)."""
    ciz, client = await network.start("ciz", "client")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await network.settle()
    allowed = client.subscriptions.matrix["allowed"]
    announced = client.peers.get(ciz.identity.did)
    assert announced is not None and "VERWIJDERDE_INDICATIE_ZORGKANTOOR" in announced.events
    client.peers._put(replace(announced, events=tuple(e for e in announced.events  # what CIZ announced before
                                                      if e != "VERWIJDERDE_INDICATIE_ZORGKANTOOR")))
    [followed] = [f["subscription_id"] for f in await follows(client) if f.get("subscription_id")]
    client.peers._put(announced)  # CIZ's announcement since its upgrade
    assert await client.client_view.follow_again(endpoint=client.url, allowed=allowed) == 1
    rows = await ciz.store.fetchall("SELECT subscription_id, events FROM subscriptions")
    assert [(sid, set(json.loads(events))) for sid, events in rows] == [
        (followed, {e for e in announced.events if "client" in allowed.get(e, {})})]
    await his_indicatie_changes(ciz, "2027-06-30")
    await network.settle()
    assert [r[0] for r in await client.store.fetchall("SELECT event_type FROM inbox")] == [
        "GEWIJZIGDE_INDICATIE_ZORGKANTOOR"]
    assert json.loads((await client.store.fetchall("SELECT value FROM settings WHERE name = 'client.subscribed.self'"))
                      [0][0])["at"] == [[ciz.identity.did, followed]]


async def test_his_node_that_moved_to_a_new_key_leaves_no_subscription_under_the_old_one(network: Network) -> None:
    """Attack on a key switch: his node follows CIZ, then moves to a new key (iwlz key rotate). It followed again
    under the new did, and the subscription of the old one stayed until the old certificate's end (a year): each
    change of his indicatie was sealed to a key no one holds any more and sent to his node, which refused it, and
    no unfollow could end it (a source takes an unsubscribe only from the did that subscribed)."""
    ciz, client = await network.start("ciz", "client")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await network.settle()
    assert [f["organisation"] for f in await follows(client) if f.get("subscription_id")] == ["CIZ"]
    old_did = client.identity.did
    client.home.rotate_key()
    network.net.issue(client.home, now=int(time.time()), valid_for=24 * 365 * HOUR)
    assert await client.reload_certificate()
    for _ in range(200):  # his node follows again in the background, under the new did
        rows = await ciz.store.fetchall("SELECT subscriber_did FROM subscriptions ORDER BY created_at")
        if (client.identity.did,) in rows:
            break
        await asyncio.sleep(0.05)
    assert rows == [(client.identity.did,)]
    await his_indicatie_changes(ciz, "2027-06-30")
    await network.settle()
    assert old_did != client.identity.did
    assert [(r["receiver_id"], r["status"]) for r in await ciz.outbox.list() if r["receiver_id_type"] == "DID"] == [
        (client.identity.did, "delivered")]
    assert [r[0] for r in await client.store.fetchall("SELECT event_type FROM inbox")] == ["GEWIJZIGDE_INDICATIE_ZORGKANTOOR"]
