"""Acceptance scenarios 1, 4, 7, 8, 9, 10 of reference/iwlz.md §3 (the notification side),
with real nodes: the right receivers get the right events, and end up with the source's record."""

from __future__ import annotations

import asyncio
import time

import pytest

from node.errors import PeerRefused, StorageError
from node.notify.outbox import WAITING
from node.service import Node
from protocol import Notification, Query, Subject
from tests.node.kit import BEM0, BEM1, IND0, IND1, SPEC0, Network, put, sample

pytestmark = pytest.mark.asyncio


def events(rows: list[dict]) -> list[tuple[str, str, str, str]]:
    return sorted((r["event_type"], r["receiver_id"], r["subjects"][0]["subject"], r["subjects"][0]["record_id"]) for r in rows)


async def test_1_new_indicatie_goes_to_the_zorgkantoor_of_the_region(network: Network) -> None:
    ciz, zk, zk5050 = await network.start("ciz", "zk5151", "zk5050")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await network.settle()
    path = f"WlzIndicatie/{IND0}"
    assert events(await ciz.outbox.list()) == [("NIEUWE_INDICATIE_ZORGKANTOOR", "5151", path, path)]
    assert [r["status"] for r in await ciz.outbox.list()] == ["delivered"]
    [received] = await zk.inbox.list()
    assert (received["event_type"], received["status"], received["fetched_version"]) == ("NIEUWE_INDICATIE_ZORGKANTOOR", "fetched", 1)
    assert received["sender_org"] == "CIZ"
    assert await zk5050.inbox.list() == []
    sent = [e for e in await ciz.audit.entries(limit=1000) if e.event.startswith("notification.sent")]
    assert [(e.actor_org, e.action, e.result) for e in sent] == [("Zorgkantoor Noord", "E", "accepted")]
    got = [e for e in await zk.audit.entries(limit=1000) if e.event.startswith("notification.received")]
    assert [(e.actor_org, e.record) for e in got] == [("CIZ", path)]


async def test_4_new_specificatie_goes_to_the_instelling_and_the_uitvoerend_zorgkantoor(network: Network) -> None:
    zk, zk5050, za = await network.start("zk5151", "zk5050", "za_a")
    bem = sample("bemiddelingen", 0)
    bem["bemiddelingspecificatie"][0]["uitvoerendZorgkantoor"] = "5050"
    await put(zk, "Bemiddeling", bem)
    await network.settle()
    subject, spec = f"Bemiddeling/{BEM0}", f"Bemiddelingspecificatie/{SPEC0}"
    assert events(await zk.outbox.list()) == [
        ("NIEUWE_BEMIDDELINGSPECIFICATIE_ZORGAANBIEDER", "12345678", subject, spec),
        ("NIEUWE_BEMIDDELINGSPECIFICATIE_ZORGKANTOOR", "5050", subject, spec),
        ("NIEUWE_REGIEHOUDER_ZORGAANBIEDER", "12345678", subject, "Regiehouder/cef605c9-f031-48c4-9f95-2f9cfef12c37"),
    ]
    inbox = {r["event_type"]: r for r in await za.inbox.list()}
    assert inbox["NIEUWE_BEMIDDELINGSPECIFICATIE_ZORGAANBIEDER"]["status"] == "fetched"
    assert inbox["NIEUWE_BEMIDDELINGSPECIFICATIE_ZORGAANBIEDER"]["fetched_version"] == 1
    assert inbox["NIEUWE_REGIEHOUDER_ZORGAANBIEDER"]["status"] == "noted"
    [at_5050] = await zk5050.inbox.list()
    assert (at_5050["event_type"], at_5050["status"]) == ("NIEUWE_BEMIDDELINGSPECIFICATIE_ZORGKANTOOR", "fetched")


async def test_7_and_8_changes_reach_every_responsible_zorgkantoor(network: Network) -> None:
    ciz, zk, zk5050 = await network.start("ciz", "zk5151", "zk5050")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 1))
    await put(zk, "Bemiddeling", sample("bemiddelingen", 1))
    await network.settle()
    moved = sample("bemiddelingen", 1)
    moved["overdracht"] = {"overdrachtID": "4b8e2f6a-9c1d-4e3f-8a5b-7c9d1e2f3a4b", "verantwoordelijkZorgkantoor": "5050",
                           "overdrachtDatum": "2026-10-01", "verhuisDatum": "2026-09-15",
                           "overdrachtspecificatie": [{"leveringsstatus": "1"}]}
    await put(zk, "Bemiddeling", moved)  # scenario 8: NIEUWE_OVERDRACHT_ZORGKANTOOR to 5050
    await network.settle()
    [overdracht] = [r for r in await zk5050.inbox.list() if r["event_type"] == "NIEUWE_OVERDRACHT_ZORGKANTOOR"]
    assert (overdracht["status"], overdracht["fetched_version"]) == ("fetched", 2)
    # 5050 reads the indicatie with the Overdracht as evidence: CIZ now knows it as responsible.
    [(_, _, evidence)] = await zk5050.query_peer(zk.url, "QBR-0007-ZK", {"bemiddelingID": BEM1, "uzovi": "5050"}, [])
    await zk5050.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND1, "uzovi": "5050"}, [evidence])
    changed = sample("wlzIndicaties", 1)
    changed["einddatum"] = "2027-03-01"
    await put(ciz, "WlzIndicatie", changed)  # scenario 7
    await network.settle()
    path = f"WlzIndicatie/{IND1}"
    gewijzigd = [r for r in await ciz.outbox.list() if r["event_type"] == "GEWIJZIGDE_INDICATIE_ZORGKANTOOR"]
    assert sorted(r["receiver_id"] for r in gewijzigd) == ["5050", "5151"]
    assert all(r["status"] == "delivered" and r["subjects"][0]["record_id"] == path for r in gewijzigd)
    [row] = [r for r in await zk5050.inbox.list() if r["event_type"] == "GEWIJZIGDE_INDICATIE_ZORGKANTOOR"]
    assert (row["status"], row["fetched_version"]) == ("fetched", 2)  # the source's current version
    # 5151 is told (it was responsible), but the Overdracht away from it ended its access.
    [row] = [r for r in await zk.inbox.list() if r["event_type"] == "GEWIJZIGDE_INDICATIE_ZORGKANTOOR"]
    assert (row["status"], row["fetched_version"], row["detail"]) == ("fetched", None, "QIR-0001-ZKi: 0 record(s)")


async def test_9_receiver_down_then_back_gets_it_once(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    ciz.outbox.first_delay = 0.05
    ciz.outbox.max_delay = 0.2
    zk_url = zk.url
    await zk.stop()
    network.nodes.pop("zk5151")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await asyncio.sleep(0.6)
    [row] = await ciz.outbox.list()
    assert row["status"] == "pending" and row["attempts"] >= 2 and "cannot reach" in row["last_error"]
    restarted = Node(zk.home, port=int(zk_url.rsplit(":", 1)[1]), mdns=False, gossip_interval=0)
    await restarted.start()
    network.nodes["zk5151"] = restarted
    await network.settle()
    deadline = time.monotonic() + 10
    while (await ciz.outbox.list())[0]["status"] != "delivered" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert (await ciz.outbox.list())[0]["status"] == "delivered"
    # A second delivery of the same notification is acknowledged but not applied again.
    note = await _notification(ciz, row)
    reply = await ciz.client.request(restarted.url, note, to=restarted.identity.did)
    assert reply.message.status == "duplicate"
    assert len(await restarted.inbox.list()) == 1


async def test_a_receiver_no_peer_names_yet_is_left_alone_until_it_appears_then_gets_it_at_once(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    # Written waiting: not tried at once, read back and rewritten (an import for parties not known yet writes a
    # million such rows), nor at every doubling step.
    [written] = await ciz.outbox.list()
    await asyncio.sleep(0.5)
    [row] = await ciz.outbox.list()
    assert row == written
    assert row["status"] == "pending" and row["attempts"] == 0 and "no peer" in row["last_error"]
    assert row["next_attempt_at"] == WAITING  # until a peer names the receiver
    (zk,) = await network.start("zk5151")  # it announces itself: what waited for it is due at once
    deadline = time.monotonic() + 10
    while (await ciz.outbox.list())[0]["status"] != "delivered" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert (await ciz.outbox.list())[0]["status"] == "delivered"
    await network.settle()
    assert [r["event_type"] for r in await zk.inbox.list()] == ["NIEUWE_INDICATIE_ZORGKANTOOR"]


async def _notification(source: Node, row: dict) -> Notification:
    return Notification(notification_id=row["notification_id"], event_type=row["event_type"], timestamp=row["created_at"],
                        sender_id_type="KVK", sender_id=source.member.identifiers["kvk"], receiver_id_type=row["receiver_id_type"],
                        receiver_id=row["receiver_id"], subscription_id=None, subjects=tuple(Subject(**s) for s in row["subjects"]))


async def test_10_notifications_that_do_not_fit_the_sender_are_refused(network: Network) -> None:
    ciz, zk, za = await network.start("ciz", "zk5151", "za_a")
    path = f"WlzIndicatie/{IND0}"
    base = dict(notification_id="0b9e1c0e-1d2a-4f5b-9c3d-2e4f6a8b0c1d", timestamp=1, subscription_id=None,
                subjects=(Subject(subject=path, record_id=path),))
    cases = [
        # a zorgaanbieder may not send an indicatie event
        (za, zk, Notification(event_type="NIEUWE_INDICATIE_ZORGKANTOOR", sender_id_type="AGB", sender_id="12345678",
                              receiver_id_type="UZOVI", receiver_id="5151", **base), "denied", "NOTIFICATION-SENDER-ROLE"),
        # the indicatie event is not sent to an AGB
        (ciz, za, Notification(event_type="NIEUWE_INDICATIE_ZORGKANTOOR", sender_id_type="KVK", sender_id="62253778",
                               receiver_id_type="AGB", receiver_id="12345678", **base), "denied", "NOTIFICATION-RECEIVER-TYPE"),
        # CIZ claiming another KVK
        (ciz, zk, Notification(event_type="NIEUWE_INDICATIE_ZORGKANTOOR", sender_id_type="KVK", sender_id="12345678",
                               receiver_id_type="UZOVI", receiver_id="5151", **base), "denied", "NOTIFICATION-SENDER-ID"),
        # addressed to another zorgkantoor
        (ciz, zk, Notification(event_type="NIEUWE_INDICATIE_ZORGKANTOOR", sender_id_type="KVK", sender_id="62253778",
                               receiver_id_type="UZOVI", receiver_id="5050", **base), "wrong-recipient", "NOTIFICATION-RECEIVER-ID"),
    ]
    for sender, receiver, note, code, rule in cases:
        with pytest.raises(PeerRefused) as info:
            await sender.client.request(receiver.url, note, to=receiver.identity.did)
        assert (info.value.code, info.value.rule) == (code, rule)
        assert await receiver.inbox.list() == []


async def test_voluntary_subscription_tells_only_of_records_the_subscriber_has_a_relation_with(network: Network) -> None:
    from protocol import Subscribe, Unsubscribe

    ciz, zk, zk5050, cak, za = await network.start("ciz", "zk5151", "zk5050", "cak", "za_a")
    for outsider in (za, cak):  # no template lets them read an indicatie: refused, with the rule named
        with pytest.raises(PeerRefused) as info:
            await outsider.send_to_peer(ciz.url, Subscribe(events=("NIEUWE_INDICATIE_ZORGKANTOOR",)))
        assert (info.value.code, info.value.rule) == ("denied", "SUBSCRIPTION-MATRIX")
    # 5050 may subscribe to indicatie changes, but hears only of clients it is or was responsible for.
    reply = await zk5050.send_to_peer(ciz.url, Subscribe(events=("NIEUWE_INDICATIE_ZORGKANTOOR",)))
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))  # region 5151
    await network.settle()
    assert [r["receiver_id"] for r in await ciz.outbox.list()] == ["5151"]
    assert await zk5050.inbox.list() == []
    await zk5050.send_to_peer(ciz.url, Unsubscribe(subscription_id=reply.message.ref))
    # At 5151: a subscription to specificatie changes reaches 5050 once a Bemiddeling names it.
    reply = await zk5050.send_to_peer(zk.url, Subscribe(events=("NIEUWE_BEMIDDELINGSPECIFICATIE_ZORGKANTOOR",)))
    subscription_id = reply.message.ref
    await put(zk, "Bemiddeling", sample("bemiddelingen", 0))  # names 5151 only
    await network.settle()
    assert not [r for r in await zk.outbox.list() if r["subscription_id"] == subscription_id]
    moved = sample("bemiddelingen", 1)
    moved["overdracht"] = {"overdrachtID": "4b8e2f6a-9c1d-4e3f-8a5b-7c9d1e2f3a4b", "verantwoordelijkZorgkantoor": "5050",
                           "overdrachtDatum": "2026-10-01", "verhuisDatum": "2026-09-15",
                           "overdrachtspecificatie": [{"leveringsstatus": "1"}]}
    moved["bemiddelingspecificatie"][0]["uitvoerendZorgkantoor"] = "5252"  # the planned notification goes to 5252
    await put(zk, "Bemiddeling", moved)
    await network.settle()
    tagged = [r for r in await zk.outbox.list() if r["subscription_id"] == subscription_id]
    assert [(r["event_type"], r["receiver_id"], r["status"]) for r in tagged] == [
        ("NIEUWE_BEMIDDELINGSPECIFICATIE_ZORGKANTOOR", "5050", "delivered")]
    await zk5050.send_to_peer(zk.url, Unsubscribe(subscription_id=subscription_id))
    assert await zk.store.fetchall("SELECT 1 FROM subscriptions") == []


async def test_dead_letter_after_the_bound_and_retry(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    ciz.outbox.first_delay, ciz.outbox.max_delay, ciz.outbox.dead_after = 0.05, 0.1, 0.0
    zk_port = int(zk.url.rsplit(":", 1)[1])
    await zk.stop()
    network.nodes.pop("zk5151")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    deadline = time.monotonic() + 5
    while not await ciz.outbox.list("dead") and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    [dead] = await ciz.outbox.list("dead")
    assert dead["last_error"] and "cannot reach" in dead["last_error"]
    restarted = Node(zk.home, port=zk_port, mdns=False, gossip_interval=0)
    await restarted.start()
    network.nodes["zk5151"] = restarted
    ciz.outbox.dead_after = 3600
    assert await ciz.outbox.retry(None) == 1
    deadline = time.monotonic() + 5
    while (await ciz.outbox.list())[0]["status"] != "delivered" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert (await ciz.outbox.list())[0]["status"] == "delivered"


async def test_a_source_that_answers_unavailable_is_asked_again_not_taken_at_its_word(network: Network) -> None:
    """``unavailable`` says "not now" (a store that could not commit, a node going down with its workers): the
    receiver fetches again later, as when the source could not be reached at all."""
    ciz, zk = await network.start("ciz", "zk5151")
    answer = ciz.queries.on_query
    failures = []

    async def unavailable_once(incoming, now):  # type: ignore[no-untyped-def]
        if not failures:
            failures.append(incoming.envelope.trace_id)
            raise StorageError("the store could not commit")
        return await answer(incoming, now)

    ciz.dispatcher._handlers[Query] = unavailable_once  # noqa: SLF001 - the source fails its first answer
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await network.settle()
    deadline = time.monotonic() + 15
    while [r["status"] for r in await zk.inbox.list()] != ["fetched"] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert len(failures) == 1
    assert [(r["status"], r["fetched_version"]) for r in await zk.inbox.list()] == [("fetched", 1)]
