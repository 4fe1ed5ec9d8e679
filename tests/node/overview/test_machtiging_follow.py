"""His gemachtigde follows his records, with real nodes: with his machtiging her node subscribes at the sources of his
records and hears of each change to them, kept apart from her own; without it no one does; and his withdrawal, or
its end, stops it at every source."""

from __future__ import annotations

import asyncio
import time

import pytest

from node.cli.client import render_overview
from node.errors import PeerRefused
from node.service import Node
from protocol import Subscribe
from protocol.records import RecordVersion
from tests.node.kit import BSN0, Network, put, sample
from tests.node.overview.test_machtiging import _signed, chain, machtig

pytestmark = pytest.mark.asyncio
EVENTS = ("GEWIJZIGDE_INDICATIE_ZORGKANTOOR",)
HIS_SOURCES = {"CIZ", "Zorgkantoor Noord"}  # his provider sends nothing a client may follow


async def follow(gemachtigde: Node, machtiging: str) -> dict[str, dict[str, object]]:
    followed = await gemachtigde.client_view.follow(endpoint=gemachtigde.url, namens=machtiging,
                                                    allowed=gemachtigde.subscriptions.matrix["allowed"])
    return {f["organisation"]: f for f in followed}


async def his_indicatie_changes(ciz: Node, einddatum: str) -> None:
    data = sample("wlzIndicaties", 0)
    data["einddatum"] = einddatum
    await put(ciz, "WlzIndicatie", data)


async def test_his_gemachtigde_follows_his_records_and_hears_of_each_change_apart_from_her_own(network: Network) -> None:
    ciz, zk, za, za_b, client, gemachtigde = await chain(network)
    machtiging = await machtig(client, gemachtigde)
    followed = await follow(gemachtigde, machtiging)
    assert {o for o, f in followed.items() if f.get("subscription_id")} == HIS_SOURCES, followed
    for source in (ciz, zk):
        rows = await source.store.fetchall(
            "SELECT receiver_id_type, receiver_id, bsn, endpoint, machtiging_id, machtiging_signer FROM subscriptions")
        assert rows == [("DID", gemachtigde.identity.did, BSN0, gemachtigde.url, machtiging, client.identity.did)]
        [entry] = [e for e in await source.audit.entries(limit=10_000) if e.event == "subscription.create"]
        assert (entry.rule, entry.result, entry.actor_did, entry.subject) == (
            "SUBSCRIPTION-GEMACHTIGDE", "accepted", gemachtigde.identity.did, BSN0)
    for other in (za, za_b):  # his provider (nothing to follow there), one with no part in his care (never asked)
        assert await other.store.fetchall("SELECT 1 FROM subscriptions") == []
    # Following again is the same subscription at each source, not one more.
    again = await follow(gemachtigde, machtiging)
    assert {o: f["subscription_id"] for o, f in again.items()} == {o: f["subscription_id"] for o, f in followed.items()}
    # He sees in his access log that she follows his records.
    log = await client.client_view.access_log()
    short = gemachtigde.identity.did[-8:]
    assert ("CIZ", f"uw gemachtigde (…{short})", "SUBSCRIPTION-GEMACHTIGDE") in {
        (e["bron"], e["wie"], e["rule"]) for e in log["entries"]}

    await his_indicatie_changes(ciz, "2027-06-30")
    other = sample("wlzIndicaties", 1)
    other["einddatum"] = "2027-06-30"
    await put(ciz, "WlzIndicatie", other)  # someone else's: not a word to her
    await network.settle()
    rows = await gemachtigde.store.fetchall("SELECT event_type, sender_org, subscription_id FROM inbox")
    assert rows == [("GEWIJZIGDE_INDICATIE_ZORGKANTOOR", "CIZ", followed["CIZ"]["subscription_id"])]
    view = await gemachtigde.client_view.overview(namens=machtiging)
    assert [(c["bron"], c["gebeurtenis"]) for c in view["wijzigingen"]] == [("CIZ", "GEWIJZIGDE_INDICATIE_ZORGKANTOOR")]
    assert view["indicaties"][0]["geldig_tot"] == "2027-06-30"
    assert "GEWIJZIGDE_INDICATIE_ZORGKANTOOR" in render_overview(view)
    own = await gemachtigde.client_view.overview(mark_seen=True)
    assert own["wijzigingen"] == []  # his changes are not hers
    # Seeing her own overview does not mark his changes seen: his view still lists them.
    assert len((await gemachtigde.client_view.overview(namens=machtiging))["wijzigingen"]) == 1


async def test_no_one_follows_his_records_without_his_machtiging(network: Network) -> None:
    """Attack, by another client: he subscribes to Jansen's records with nothing, with a machtiging he signed
    himself, with a consent Jansen gave a provider, with Jansen's machtiging to someone else, with one that ended,
    and with one for his access log only; and with Jansen's machtiging to him, for another client's BSN."""
    ciz, zk, za, za_b, client, visser = await chain(network)

    async def refused(machtiging: bytes | None, bsn: str = BSN0) -> str:
        with pytest.raises(PeerRefused) as info:
            await visser.router.send(ciz.identity.did, Subscribe(events=EVENTS, bsn=bsn, endpoint=visser.url,
                                                                 machtiging=machtiging))
        assert (info.value.code, info.value.rule) == ("denied", "SUBSCRIPTION-MATRIX")
        return info.value.reason

    assert "his own records only" in await refused(None)
    forged = {"toestemmingID": "0f0e5d3c-1b2a-4c9d-8e7f-6a5b4c3d2e1f", "bsn": BSN0, "ontvanger": {"did": visser.identity.did},
              "bronnen": ["*"], "templates": ["CLIENT-EIGEN-GEGEVENS", "CLIENT-ACCESS-LOG"], "doel": "vertegenwoordiging",
              "geldigTot": "2099-12-31", "bsnSleutel": visser.home.bsn_key().hex()}
    signed = visser.registers.signer.sign(RecordVersion("Toestemming", forged["toestemmingID"], 1, visser.identity.did,
                                                        visser.now(), False, forged))
    assert "not signed by the client" in await refused(signed)
    consent = await client.client_view.grant(to="agb:87654321", templates=["CLIENT-EIGEN-GEGEVENS"],
                                             purpose="vertegenwoordiging", until="2099-12-31", sources=["*"])
    assert "no machtiging" in await refused(await _signed(client, consent["id"]))
    other = await client.client_view.grant(to=za_b.identity.did, templates=["CLIENT-EIGEN-GEGEVENS"],
                                           purpose="vertegenwoordiging", until="2099-12-31", sources=["*"])
    assert "given to another party" in await refused(await _signed(client, other["id"]))
    ended = await machtig(client, visser, until="2020-01-01")
    assert "it has ended" in await refused(await _signed(client, ended))
    log_only = await client.client_view.grant(to=visser.identity.did, templates=["CLIENT-ACCESS-LOG"],
                                              purpose="vertegenwoordiging", until="2099-12-31", sources=["*"])
    assert "does not cover CLIENT-EIGEN-GEGEVENS" in await refused(await _signed(client, log_only["id"]))
    his = await _signed(client, await machtig(client, visser))
    assert "not signed by the client the data is about" in await refused(his, bsn="999999990")
    assert await ciz.store.fetchall("SELECT 1 FROM subscriptions") == []
    # Nothing of what Jansen's records hold reaches Visser when they change.
    await his_indicatie_changes(ciz, "2027-06-30")
    await network.settle()
    assert await visser.store.fetchall("SELECT 1 FROM inbox") == []


async def _delivered_to(node: Node, receivers: set[str]) -> None:
    deadline = time.monotonic() + 10
    while {r["receiver_id"] for r in await node.outbox.list() if r["status"] == "delivered"} < receivers \
            and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def test_his_withdrawal_ends_what_she_follows_at_every_source(network: Network) -> None:
    ciz, zk, za, za_b, client, gemachtigde = await chain(network)
    machtiging = await machtig(client, gemachtigde)
    await follow(gemachtigde, machtiging)
    signed = await _signed(client, machtiging)
    client.outbox.first_delay, client.outbox.max_delay = 0.05, 0.2
    await client.client_view.revoke(machtiging)
    await _delivered_to(client, {"62253778", "5151", "12345678"})  # CIZ, his zorgkantoor, his provider
    for source in (ciz, zk):
        assert await source.store.fetchall("SELECT 1 FROM subscriptions") == [], source.member.organisation
    await his_indicatie_changes(ciz, "2027-06-30")
    await network.settle()
    assert await gemachtigde.store.fetchall("SELECT 1 FROM inbox") == []
    assert not [r for r in await ciz.outbox.list() if r["receiver_id"] == gemachtigde.identity.did]
    # Nor does it open a subscription again at a source that was told.
    with pytest.raises(PeerRefused) as info:
        await gemachtigde.router.send(ciz.identity.did, Subscribe(events=EVENTS, bsn=BSN0, endpoint=gemachtigde.url,
                                                                   machtiging=signed))
    assert "withdrawn" in info.value.reason
    # Her node, told by his that it no longer stands, lets go of it and of what it kept of it: it follows no more.
    [shown] = await gemachtigde.client_view.represented()
    assert shown["id"] == machtiging
    assert await gemachtigde.store.fetchall("SELECT name FROM settings WHERE name LIKE ?", (f"client.%.{machtiging}",)) == []


async def test_what_she_follows_ends_with_the_machtiging(network: Network) -> None:
    """A machtiging until a date: at CIZ its end has come (the date it keeps with the subscription is in the past, as
    the calendar will make it); a change after that goes to no one."""
    ciz, zk, za, za_b, client, gemachtigde = await chain(network)
    machtiging = await machtig(client, gemachtigde, until="2099-12-31")
    await follow(gemachtigde, machtiging)
    assert await ciz.store.fetchall("SELECT machtiging_until FROM subscriptions") == [("2099-12-31",)]
    await ciz.store.write([("UPDATE subscriptions SET machtiging_until = '2020-01-01'", (), False)])
    await his_indicatie_changes(ciz, "2027-06-30")
    await network.settle()
    assert await gemachtigde.store.fetchall("SELECT 1 FROM inbox") == []
    asked = len([e for e in await client.audit.entries(limit=1000) if e.event == "query RECORD-STATUS"])
    assert await ciz.subscriptions.ask_after_machtigingen(ciz.now()) == 1  # the row goes too, his node not asked
    assert await ciz.store.fetchall("SELECT 1 FROM subscriptions") == []
    assert len([e for e in await client.audit.entries(limit=1000) if e.event == "query RECORD-STATUS"]) == asked
    # The zorgkantoor's still holds: a change there reaches her.
    bemiddeling = sample("bemiddelingen", 0)
    bemiddeling["bemiddelingspecificatie"][0]["toewijzingEinddatum"] = "2027-06-30"
    await put(zk, "Bemiddeling", bemiddeling)
    await network.settle()
    assert [r[0] for r in await gemachtigde.store.fetchall("SELECT sender_org FROM inbox")] == ["Zorgkantoor Noord"]


async def test_a_revoked_certificate_of_his_ends_what_she_follows_by_his_machtiging(network: Network) -> None:
    """His node's certificate revoked (lost, stolen): what was signed under it opens nothing, and what she follows by
    his machtiging ends with it (his node is in no peer table: nothing else would end it)."""
    import aiohttp

    ciz, zk, za, za_b, client, gemachtigde = await chain(network)
    machtiging = await machtig(client, gemachtigde)
    await follow(gemachtigde, machtiging)
    _, data = network.net.revoke([client.member.cert_id.hex()], now=ciz.now())
    async with aiohttp.ClientSession() as http:  # what `iwlz cert revoke --push URL` sends
        async with http.post(ciz.url + "/iwlz/v1/revocations", data=data) as response:
            assert (await response.json()) == {"adopted": True}
    await his_indicatie_changes(ciz, "2027-06-30")
    await network.settle()
    assert not [r for r in await ciz.outbox.list() if r["receiver_id"] == gemachtigde.identity.did]
    assert await gemachtigde.store.fetchall("SELECT 1 FROM inbox") == []


async def test_a_source_not_told_of_his_withdrawal_asks_his_node_before_she_follows_by_it(network: Network) -> None:
    """Attack: he withdrew the machtiging minutes after giving it, and CIZ was not told (his node's notifications
    did not reach it). Within the freshness bound a source takes a machtiging as it is for one query; a
    subscription by it would have lasted until its geldigTot. A source now asks his node before she follows by one,
    however young it is."""
    ciz, zk, za, za_b, client, gemachtigde = await chain(network)
    machtiging = await machtig(client, gemachtigde)
    signed = await _signed(client, machtiging)
    client.registers.notifier = None  # his withdrawal reaches no source
    await client.client_view.revoke(machtiging)
    assert await ciz.store.fetchall("SELECT 1 FROM revoked_consents") == []
    assert len(await gemachtigde.router.query(ciz.identity.did, "CLIENT-EIGEN-GEGEVENS", {"bsn": BSN0}, [signed])) == 1
    with pytest.raises(PeerRefused) as info:
        await gemachtigde.router.send(ciz.identity.did, Subscribe(events=EVENTS, bsn=BSN0, endpoint=gemachtigde.url,
                                                                   machtiging=signed))
    assert (info.value.code, info.value.rule) == ("denied", "SUBSCRIPTION-MATRIX")
    assert "its signer says it no longer stands" in info.value.reason
    assert await ciz.store.fetchall("SELECT 1 FROM subscriptions") == []
    assert "query RECORD-STATUS" in {e.event for e in await client.audit.entries(limit=1000)}
    # A new one, his node away: she follows by it once his node answers, not before.
    second = await _signed(client, await machtig(client, gemachtigde))
    await client.stop()
    network.nodes.pop("client")
    with pytest.raises(PeerRefused) as info:
        await gemachtigde.router.send(ciz.identity.did, Subscribe(events=EVENTS, bsn=BSN0, endpoint=gemachtigde.url,
                                                                   machtiging=second))
    assert "could not be asked whether it still stands" in info.value.reason


async def test_a_source_his_withdrawal_did_not_reach_asks_his_node_after_what_she_follows(network: Network) -> None:
    """Attack: she follows his records at CIZ; he withdraws the machtiging and CIZ is not told (his records no longer
    lead his node there, or his notifications did not get through). Before, CIZ sent her his changes until its
    geldigTot. A source now asks his node after each machtiging followed by (every evidence_freshness): one he
    withdrew ends what she follows by it; his node not answering ends nothing."""
    ciz, zk, za, za_b, client, gemachtigde = await chain(network)
    machtiging = await machtig(client, gemachtigde)
    await follow(gemachtigde, machtiging)
    assert await ciz.subscriptions.ask_after_machtigingen(ciz.now()) == 0  # it stands: nothing ends
    client.registers.notifier = None  # his withdrawal reaches no source
    await client.client_view.revoke(machtiging)
    assert len(await ciz.store.fetchall("SELECT 1 FROM subscriptions")) == 1
    assert await ciz.subscriptions.ask_after_machtigingen(ciz.now()) == 1
    assert await ciz.store.fetchall("SELECT 1 FROM subscriptions") == []
    await his_indicatie_changes(ciz, "2027-06-30")
    await network.settle()
    assert await gemachtigde.store.fetchall("SELECT 1 FROM inbox") == []

    client.registers.notifier = client.outbox.statements_for
    second = await machtig(client, gemachtigde)
    await follow(gemachtigde, second)
    await client.stop()
    network.nodes.pop("client")
    assert await ciz.subscriptions.ask_after_machtigingen(ciz.now()) == 0
    assert await ciz.store.fetchall("SELECT machtiging_id FROM subscriptions") == [(second,)]


async def test_her_node_follows_his_records_again_when_it_takes_up_a_renewed_certificate(network: Network) -> None:
    """What she follows rests, at each source, on the certificate she subscribed with: renewed, her node subscribes
    again by the machtiging it holds (the same subscriptions), or his records would go quiet when the old one ends."""
    ciz, zk, za, za_b, client, gemachtigde = await chain(network)
    machtiging = await machtig(client, gemachtigde)
    network.net.issue(gemachtigde.home, now=int(time.time()), valid_for=2 * 3600)
    assert await gemachtigde.reload_certificate()
    followed = await follow(gemachtigde, machtiging)
    renewed = network.net.issue(gemachtigde.home, now=int(time.time()), valid_for=365 * 24 * 3600)
    assert await gemachtigde.reload_certificate()
    for source in (ciz, zk):
        for _ in range(200):  # in the background
            rows = await source.store.fetchall("SELECT subscription_id, subscriber_until FROM subscriptions")
            if rows and rows[0][1] == renewed.expires:
                break
            await asyncio.sleep(0.05)
        assert rows == [(followed[source.member.organisation]["subscription_id"], renewed.expires)]


async def test_a_machtiging_that_ended_by_its_date_is_not_followed_again_and_what_her_node_kept_of_it_goes(
        network: Network) -> None:
    ciz, zk, za, za_b, client, gemachtigde = await chain(network)
    machtiging = await machtig(client, gemachtigde, until="2099-12-31")
    await follow(gemachtigde, machtiging)
    await gemachtigde.client_view.overview(namens=machtiging)  # her node keeps the sources his records led it to
    kept = "SELECT name FROM settings WHERE name LIKE 'client.%'"
    assert {n for (n,) in await gemachtigde.store.fetchall(kept)} == {
        f"client.follows.{machtiging}", f"client.sources.{machtiging}", f"client.subscribed.{machtiging}"}
    allowed = gemachtigde.subscriptions.matrix["allowed"]
    assert await gemachtigde.client_view.follow_again(endpoint=gemachtigde.url, allowed=allowed) == 2
    gemachtigde.clock = lambda: time.mktime((2100, 1, 2, 0, 0, 0, 0, 0, -1))  # its geldigTot has passed
    assert await gemachtigde.client_view.follow_again(endpoint=gemachtigde.url, allowed=allowed) == 0
    assert await gemachtigde.store.fetchall(kept) == []


async def test_she_stops_following_his_records_at_every_source_and_her_node_does_not_follow_again(network: Network) -> None:
    ciz, zk, za, za_b, client, gemachtigde = await chain(network)
    machtiging = await machtig(client, gemachtigde)
    followed = await follow(gemachtigde, machtiging)
    assert (await gemachtigde.client_view.overview(namens=machtiging))["namens"]["volgt"] is True
    ended = await gemachtigde.client_view.unfollow(namens=machtiging)
    assert {(e["organisation"], e["subscription_id"], e["ended"]) for e in ended} == {
        (o, f["subscription_id"], True) for o, f in followed.items() if f.get("subscription_id")}
    for source in (ciz, zk):
        assert await source.store.fetchall("SELECT 1 FROM subscriptions") == []
        [entry] = [e for e in await source.audit.entries(limit=10_000) if e.event == "subscription.delete"]
        assert entry.actor_did == gemachtigde.identity.did
    assert (await gemachtigde.client_view.overview(namens=machtiging))["namens"]["volgt"] is False
    allowed = gemachtigde.subscriptions.matrix["allowed"]
    assert await gemachtigde.client_view.follow_again(endpoint=gemachtigde.url, allowed=allowed) == 0
    await his_indicatie_changes(ciz, "2027-06-30")
    await network.settle()
    assert await gemachtigde.store.fetchall("SELECT 1 FROM inbox") == []
    assert await ciz.store.fetchall("SELECT 1 FROM subscriptions") == []


async def test_his_withdrawal_after_he_moved_to_a_new_key_ends_what_she_follows_by_the_copy_signed_under_the_old_one(
        network: Network) -> None:
    """Attack on a withdrawal after his key switch: she follows his records by the machtiging as signed under his
    old key. His withdrawal came from the new did, and a source ended what was followed by a machtiging of that
    did only; asking his node after it went to the old did, which no longer answers as such: she was sent his
    changes until its geldigTot, or until her node followed again."""
    ciz, zk, za, za_b, client, gemachtigde = await chain(network)
    machtiging = await machtig(client, gemachtigde)
    await follow(gemachtigde, machtiging)
    client.home.rotate_key()
    network.net.issue(client.home, now=int(time.time()), valid_for=365 * 24 * 3600)
    assert await client.reload_certificate()
    client.outbox.first_delay, client.outbox.max_delay = 0.05, 0.2
    await client.client_view.revoke(machtiging)
    await _delivered_to(client, {"62253778", "5151", "12345678"})  # CIZ, his zorgkantoor, his provider
    for source in (ciz, zk):
        await source.subscriptions.ask_after_machtigingen(source.now())  # every evidence_freshness
        assert await source.store.fetchall("SELECT 1 FROM subscriptions") == [], source.member.organisation
    await his_indicatie_changes(ciz, "2027-06-30")
    await network.settle()
    assert not [r for r in await ciz.outbox.list() if r["receiver_id"] == gemachtigde.identity.did]
