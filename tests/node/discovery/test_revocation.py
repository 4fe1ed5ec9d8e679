"""Live revocation: a revocation list reaches running nodes, and the revoked member is shut out at once.

No node restarts here. The list enters one node (pushed by the network root's
operator, or installed in a running node's home) and spreads; every node then
refuses the member's requests, drops it from its peer table, ends what was
waiting for it by did, and ends its subscriptions.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from node.cli import main
from node.errors import NetworkError
from tests.node.kit import IND0, Network, put, sample

pytestmark = pytest.mark.asyncio


async def until(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def waiting_by_did(ciz, zk, event: str) -> None:  # type: ignore[no-untyped-def]
    """A notification at ``ciz`` for ``zk``, addressed to it by did as to a subscriber."""
    from node.notify.events import Planned

    await ciz.store.write([ciz.outbox._insert(Planned(  # noqa: SLF001
        event, "UZOVI", "5151", f"WlzIndicatie/{IND0}", f"WlzIndicatie/{IND0}",
        subscription_id="6a1f8a4e-2c59-4d0b-8f3e-5b7c9d1e2f30", receiver_did=zk.identity.did), ciz.now())])


async def test_a_pushed_list_shuts_the_member_out_of_every_running_node(network: Network) -> None:
    ciz, zk, zk5050, za = await network.start("ciz", "zk5151", "zk5050", "za_a")
    from protocol import Subscribe

    await zk.send_to_peer(ciz.url, Subscribe(events=("GEWIJZIGDE_INDICATIE_ZORGKANTOOR",)))
    assert len(await ciz.store.fetchall("SELECT 1 FROM subscriptions")) == 1
    assert await zk.query_peer(ciz.url, "RECORD-STATUS", {"kind": "WlzIndicatie", "id": IND0}, []) == []
    cert_id, did = zk.member.cert_id, zk.identity.did
    _, data = network.net.revoke([cert_id.hex()], now=ciz.now())

    async with aiohttp.ClientSession() as http:  # what `iwlz cert revoke --push URL` sends
        async with http.post(ciz.url + "/iwlz/v1/revocations", data=data) as response:
            assert response.status == 200 and (await response.json()) == {"adopted": True}
        async with http.post(ciz.url + "/iwlz/v1/revocations", data=data) as response:
            assert (await response.json()) == {"adopted": False}  # not newer: nothing changes
        async with http.post(ciz.url + "/iwlz/v1/revocations", data=b"\xd2\x84garbage") as response:
            assert response.status == 200 and (await response.json()) == {"adopted": False}

    with pytest.raises(NetworkError, match="revoked"):
        await zk.query_peer(ciz.url, "RECORD-STATUS", {"kind": "WlzIndicatie", "id": IND0}, [])
    others = (ciz, zk5050, za)
    await until(lambda: all(n.trust.is_revoked(cert_id) and n.peers.get(did) is None for n in others))
    for node in (zk5050, za):  # handed on at once, no gossip round ran (gossip is off in these tests)
        with pytest.raises(NetworkError, match="revoked"):
            await zk.send_to_peer(node.url, Subscribe(events=("NIEUWE_BEMIDDELINGSPECIFICATIE_ZORGKANTOOR",)))
    await ciz.store.write([])  # the revocation's follow-up commit has run by now
    await asyncio.sleep(0.1)
    assert await ciz.store.fetchall("SELECT 1 FROM subscriptions") == []
    assert await ciz.store.fetchall("SELECT 1 FROM peers WHERE did = ?", (did,)) == []
    # A change for region 5151 is not delivered to the revoked node: no valid member with UZOVI 5151 is known.
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await asyncio.sleep(0.5)
    assert [r["status"] for r in await ciz.outbox.list()] == ["pending"]
    assert await zk.inbox.list() == []


async def test_pending_notifications_to_a_revoked_member_stop(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    await waiting_by_did(ciz, zk, "NIEUWE_INDICATIE_ZORGKANTOOR")
    await zk.stop()
    network.nodes.pop("zk5151")
    _, data = network.net.revoke([zk.member.cert_id.hex()], now=ciz.now())
    assert ciz.adopt_revocation_list(data)
    for _ in range(100):
        rows = await ciz.outbox.list()
        if rows[0]["status"] == "dead":
            break
        await asyncio.sleep(0.02)
    assert (rows[0]["status"], rows[0]["last_error"]) == ("dead", "the receiver was revoked")


async def test_cert_revoke_install_hands_the_list_to_the_running_node(network: Network, capsys) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    args = ["--json", "cert", "revoke", "--network", str(network.net.path), zk.member.cert_id.hex(),
            "--install", str(ciz.home.path)]
    assert await asyncio.to_thread(main, args) == 0
    assert ciz.trust.is_revoked(zk.member.cert_id)
    assert ciz.peers.get(zk.identity.did) is None
    assert '"running": true' in capsys.readouterr().out
    with pytest.raises(NetworkError, match="revoked"):
        await zk.query_peer(ciz.url, "RECORD-STATUS", {"kind": "WlzIndicatie", "id": IND0}, [])


async def test_cert_revoke_push_sends_the_list_into_the_network(network: Network, capsys) -> None:
    ciz, zk, zk5050 = await network.start("ciz", "zk5151", "zk5050")
    args = ["cert", "revoke", "--network", str(network.net.path), zk5050.member.cert_id.hex(), "--push", zk.url]
    assert await asyncio.to_thread(main, args) == 0
    assert "adopted" in capsys.readouterr().out
    await until(lambda: ciz.trust.is_revoked(zk5050.member.cert_id))  # zk handed it on
    assert await asyncio.to_thread(main, ["cert", "revoke", "--network", str(network.net.path), "00" * 16,
                                          "--push", "http://127.0.0.1:9"]) == 1


async def _push(network: Network, node, cert_ids: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    _, data = network.net.revoke([c.hex() for c in cert_ids], now=node.now())
    async with aiohttp.ClientSession() as http:  # what `iwlz cert revoke --push URL` sends
        async with http.post(node.url + "/iwlz/v1/revocations", data=data) as response:
            assert (await response.json()) == {"adopted": True}


async def test_a_revoked_clients_key_hears_nothing_more_of_his_records(network: Network) -> None:
    """Attack: his phone with his node's key is stolen; the root revokes his certificate. A client's node is in no
    peer table, so nothing ended his subscription: CIZ kept sending what changed in his records (which record, what
    event) to whoever answers at his endpoint with that key, sealed to it, and tried again for a week. Now his
    subscriptions end with his certificate, and what waited for them is not sent."""
    from tests.node.overview.test_client_view import care_network

    ciz, zk, za, za_b, client = await care_network(network)
    await client.client_view.follow(endpoint=client.url, allowed=client.subscriptions.matrix["allowed"])
    assert len(await ciz.store.fetchall("SELECT 1 FROM subscriptions")) == 1
    await client.stop()  # away: a change waits for him
    network.nodes.pop("client")
    mine = sample("wlzIndicaties", 0)
    mine["einddatum"] = "2027-06-30"
    await put(ciz, "WlzIndicatie", mine)
    [waiting] = [r for r in await ciz.outbox.list() if r["receiver_id"] == client.identity.did]
    assert waiting["status"] == "pending"

    await _push(network, ciz, [client.member.cert_id])
    await until(lambda: ciz.trust.is_revoked(client.member.cert_id))
    await ciz.store.write([])
    await asyncio.sleep(0.2)  # the revocation's follow-up commit has run by now
    assert await ciz.store.fetchall("SELECT 1 FROM subscriptions") == []
    [ended] = [r for r in await ciz.outbox.list() if r["receiver_id"] == client.identity.did]
    assert (ended["status"], ended["last_error"]) == ("dead", "the receiver was revoked")
    mine["einddatum"] = "2028-06-30"
    await put(ciz, "WlzIndicatie", mine)
    assert len([r for r in await ciz.outbox.list() if r["receiver_id"] == client.identity.did]) == 1  # nothing new


async def test_a_revoked_certificate_of_his_ends_what_she_follows_by_his_machtiging_and_what_waits(
        network: Network) -> None:
    """His node's certificate revoked: the machtiging signed under it opens nothing, and what his gemachtigde follows
    by it ends, with what waited to be sent to her by it; what she follows of her own stays."""
    from tests.node.overview.test_machtiging import chain, machtig

    ciz, zk, za, za_b, client, gemachtigde = await chain(network)
    machtiging = await machtig(client, gemachtigde)
    await gemachtigde.client_view.follow(endpoint=gemachtigde.url, namens=machtiging,
                                         allowed=gemachtigde.subscriptions.matrix["allowed"])
    await gemachtigde.client_view.follow(endpoint=gemachtigde.url, allowed=gemachtigde.subscriptions.matrix["allowed"])
    assert len(await ciz.store.fetchall("SELECT 1 FROM subscriptions")) == 2
    await _push(network, ciz, [client.member.cert_id])
    await until(lambda: ciz.trust.is_revoked(client.member.cert_id))
    await ciz.store.write([])
    await asyncio.sleep(0.2)
    assert await ciz.store.fetchall("SELECT bsn FROM subscriptions") == [("737459086",)]  # hers, not his


async def test_a_list_installed_while_the_node_was_stopped_ends_what_rests_on_a_revoked_certificate_at_start(
        network: Network) -> None:
    """The list reached CIZ's home while CIZ was stopped (installed by its operator): at start it refused the
    client, but his subscription stayed and what waited for it was sent to his key. It ends at start now."""
    from node.service import Node
    from tests.node.overview.test_client_view import care_network

    ciz, zk, za, za_b, client = await care_network(network)
    await client.client_view.follow(endpoint=client.url, allowed=client.subscriptions.matrix["allowed"])
    await client.stop()
    network.nodes.pop("client")
    mine = sample("wlzIndicaties", 0)
    mine["einddatum"] = "2027-06-30"
    await put(ciz, "WlzIndicatie", mine)
    port = int(ciz.url.rsplit(":", 1)[1])
    await ciz.stop()
    network.nodes.pop("ciz")
    _, data = network.net.revoke([client.member.cert_id.hex()], now=ciz.now())
    ciz.home.store_revocation_list(data)
    restarted = Node(ciz.home, port=port, mdns=False, gossip_interval=0)
    await restarted.start()
    network.nodes["ciz"] = restarted
    assert restarted.trust.is_revoked(client.member.cert_id)
    assert await restarted.store.fetchall("SELECT 1 FROM subscriptions") == []
    [ended] = [r for r in await restarted.outbox.list() if r["receiver_id"] == client.identity.did]
    assert (ended["status"], ended["last_error"]) == ("dead", "the receiver was revoked")


async def test_a_member_revoked_while_the_node_was_stopped_is_sent_nothing_at_start(network: Network) -> None:
    """A zorgkantoor's key is stolen and the root revokes its certificate while CIZ is stopped; CIZ's operator
    installs the list. CIZ's peer table still held the member when it started again, so CIZ announced itself to
    the thief's endpoint and sent it what waited for it (sealed to the stolen key); what waited by its did and its
    subscriptions were never ended. At start, the revoked member now leaves the table and what rests on it ends."""
    from node.service import Node
    from protocol import Subscribe

    ciz, zk = await network.start("ciz", "zk5151")
    await zk.send_to_peer(ciz.url, Subscribe(events=("GEWIJZIGDE_INDICATIE_ZORGKANTOOR",)))
    await zk.stop()
    network.nodes.pop("zk5151")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    changed = sample("wlzIndicaties", 0)
    changed["einddatum"] = "2027-06-30"
    await put(ciz, "WlzIndicatie", changed)
    await waiting_by_did(ciz, zk, "GEWIJZIGDE_INDICATIE_ZORGKANTOOR")
    assert [r["receiver_did"] for r in await ciz.outbox.list() if r["status"] == "pending"] == [zk.identity.did, None, None]
    ciz_port, zk_port = (int(n.url.rsplit(":", 1)[1]) for n in (ciz, zk))
    await ciz.stop()
    network.nodes.pop("ciz")
    _, data = network.net.revoke([zk.member.cert_id.hex()], now=ciz.now())
    ciz.home.store_revocation_list(data)

    thief = Node(zk.home, port=zk_port, mdns=False, gossip_interval=0)  # the stolen key, at the member's endpoint
    await thief.start()
    network.nodes["thief"] = thief
    restarted = Node(ciz.home, port=ciz_port, mdns=False, gossip_interval=0)
    await restarted.start()
    network.nodes["ciz"] = restarted
    assert restarted.peers.get(zk.identity.did) is None
    await asyncio.sleep(1.5)  # the outbox's first passes and the announcements at start
    assert await thief.inbox.list() == []
    assert await restarted.store.fetchall("SELECT 1 FROM subscriptions") == []
    assert await restarted.store.fetchall("SELECT 1 FROM peers WHERE did = ?", (zk.identity.did,)) == []
    rows = await restarted.outbox.list()
    [by_did] = [r for r in rows if r["receiver_did"] == zk.identity.did]
    assert (by_did["status"], by_did["last_error"]) == ("dead", "the receiver was revoked")
    # What was addressed to the region waits for a zorgkantoor with a valid certificate for it.
    assert [r["status"] for r in rows if r["receiver_did"] is None] == ["pending", "pending"]


async def test_a_revocation_list_ends_nothing_of_a_member_whose_announcement_merely_expired(network: Network) -> None:
    """A list takes the revoked members out of the peer table, and only them: a peer whose announcement expired
    (it has been away a while) is still a member, and what waits for it by its did waits on."""
    import dataclasses

    ciz, zk, zk5050 = await network.start("ciz", "zk5151", "zk5050")
    await waiting_by_did(ciz, zk, "GEWIJZIGDE_INDICATIE_ZORGKANTOOR")
    await zk.stop()
    network.nodes.pop("zk5151")
    away = ciz.peers.get(zk.identity.did)
    assert away is not None
    ciz.peers._put(dataclasses.replace(away, expires=ciz.now() - 1))  # noqa: SLF001 (its announcement ran out)
    _, data = network.net.revoke([zk5050.member.cert_id.hex()], now=ciz.now())
    assert ciz.adopt_revocation_list(data)
    await until(lambda: ciz.peers.get(zk5050.identity.did) is None)
    await ciz.store.write([])  # the revocation's follow-up commit has run by now
    await asyncio.sleep(0.1)
    [row] = [r for r in await ciz.outbox.list() if r["receiver_did"] == zk.identity.did]
    assert row["status"] == "pending" and row["last_error"] != "the receiver was revoked"
