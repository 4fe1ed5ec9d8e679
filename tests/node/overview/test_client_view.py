"""The client at the centre, with real nodes: his data from every source, and who looked at it, everywhere."""

from __future__ import annotations

from typing import Any

import pytest

from node.cli.client import render_access_log, render_overview
from node.errors import PeerRefused
from node.service import Node
from tests.node.kit import BSN0, IND0, IND1, SPEC0, Network, put, sample

pytestmark = pytest.mark.asyncio
LEVERING = {"leveringID": "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "bemiddelingspecificatieID": SPEC0, "bsn": BSN0,
            "zorgkantoor": "5151", "leveringperiodes": [{"ingangsdatum": "2026-10-01"}], "verzoeken": []}
OFFER = {"zorgaanbodID": "5d1e7a3c-2b4f-4c6e-9a8b-1c3e5f7a9b2d", "instelling": "12345678", "regio": "5151",
         "zzpCodes": ["5VV"], "leveringsvormen": ["1"], "vrijeCapaciteit": 3, "peildatum": "2026-11-01"}


async def care_network(network: Network):
    ciz, zk, za, za_b, client = await network.start("ciz", "zk5151", "za_a", "za_b", "client")
    await ciz.registers.load_many("WlzIndicatie", [sample("wlzIndicaties", i) for i in range(3)], actor=ciz.actor,
                                  now=ciz.now())  # a bulk load: his creation must show all the same
    await put(zk, "Bemiddeling", sample("bemiddelingen", 0))
    await put(zk, "Bemiddeling", sample("bemiddelingen", 1))  # someone else's
    await network.settle()  # the provider fetched the specificatie: its care rests on it
    await put(za, "Levering", LEVERING)
    await put(za, "Zorgaanbod", OFFER)
    await network.settle()
    return ciz, zk, za, za_b, client


async def test_the_client_sees_exactly_his_own_data_from_every_source(network: Network) -> None:
    ciz, zk, za, za_b, client = await care_network(network)
    view = await client.client_view.overview()
    assert {a["organisation"]: a["records"] for a in view["asked"]} == {
        "CIZ": 1, "Zorgkantoor Noord": 1, "Zorggroep De Linde": 1}  # not Thuiszorg Het Anker: it holds nothing of his
    [ind] = view["indicaties"]
    assert ind["id"] == IND0 and ind["bron"] == "CIZ"
    assert [z["uzovi"] for z in view["zorgkantoren"]] == ["5151"]
    assert [(a["aanbieder"], a["sinds"]) for a in view["zorgaanbieders"]] == [("Zorggroep De Linde", "2026-01-15")]
    assert [c["status"] for c in view["zorg"]] == ["zorg loopt"]
    assert [o["aanbieder"] for o in view["zorgaanbod"]] == ["Zorggroep De Linde"]
    text = render_overview(view)
    assert "Zorggroep De Linde sinds 2026-01-15" in text and "geldig" in text
    everything = repr(view)
    assert IND1 not in everything and "737459086" not in everything  # nobody else's data


async def test_a_source_that_holds_nothing_of_his_never_learns_his_bsn_from_his_node(network: Network) -> None:
    """Attack, by a zorgaanbieder or zorgkantoor with no part in his care: his node asked every source in the
    network for his data, for his access log and to follow his records, his BSN in each request. Each of them
    (thousands of zorgaanbieders in the Netherlands) learned his BSN, and that he is a Wlz client, and kept both in
    its audit log. Now his node follows the chain his records draw: CIZ and the CAK (which know every Wlz client),
    then the zorgkantoren his indicaties and bemiddelingen name, then the zorgaanbieders their toewijzingen name."""
    ciz, zk, zk_zuid, za, za_b, cak, client = await network.start("ciz", "zk5151", "zk5050", "za_a", "za_b", "cak",
                                                                   "client")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await put(zk, "Bemiddeling", sample("bemiddelingen", 0))
    await network.settle()
    await put(za, "Levering", LEVERING)
    await network.settle()
    assert {p.organisation for p in client.client_view.sources()} >= {"Zorgkantoor Zuid", "Thuiszorg Het Anker"}
    view = await client.client_view.overview()
    log = await client.client_view.access_log()
    followed = await client.client_view.follow(endpoint=client.url, allowed=client.subscriptions.matrix["allowed"])
    asked = {"CIZ", "CAK", "Zorgkantoor Noord", "Zorggroep De Linde"}
    assert {a["organisation"] for a in view["asked"]} == asked == {a["organisation"] for a in log["asked"]}
    assert {f["organisation"] for f in followed} <= asked
    assert [z["uzovi"] for z in view["zorgkantoren"]] == ["5151"] and [c["status"] for c in view["zorg"]] == ["zorg loopt"]
    for outsider in (zk_zuid, za_b):  # the provider was asked for its care offer, which names no one
        heard = await outsider.store.fetchall("SELECT event FROM audit WHERE subject = ? OR actor_did = ?",
                                              (BSN0, client.identity.did))
        assert set(heard) <= {("query ZORGAANBOD",)}, outsider.member.organisation
        assert await outsider.store.fetchone("SELECT count(*) FROM subscriptions") == (0,)
    assert await za.store.fetchone("SELECT count(*) FROM audit WHERE actor_did = ?", (client.identity.did,)) != (0,)


async def test_the_cak_hears_of_him_only_once_care_is_delivered_to_him(network: Network) -> None:
    """The CAK counts the eigen bijdrage of clients in care: before his care starts it has nothing of his, and was
    asked with his BSN all the same."""
    ciz, zk, za, cak, client = await network.start("ciz", "zk5151", "za_a", "cak", "client")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await put(zk, "Bemiddeling", sample("bemiddelingen", 0))
    await network.settle()
    view = await client.client_view.overview()
    assert {a["organisation"] for a in view["asked"]} == {"CIZ", "Zorgkantoor Noord", "Zorggroep De Linde"}
    assert await cak.store.fetchone("SELECT count(*) FROM audit WHERE subject = ?", (BSN0,)) == (0,)
    await put(za, "Levering", LEVERING)
    await network.settle()
    view = await client.client_view.overview()
    assert {a["organisation"] for a in view["asked"]} == {"CIZ", "Zorgkantoor Noord", "Zorggroep De Linde", "CAK"}


async def test_with_ciz_away_his_overview_still_holds_what_the_others_hold_of_his(network: Network) -> None:
    """The chain starts at CIZ and the CAK: with CIZ unreachable it reached no zorgkantoor or provider, and his
    overview was empty but for the error. His node also asks, from the start, the sources the chain led it to before."""
    ciz, zk, za, za_b, client = await care_network(network)
    first = await client.client_view.overview()
    assert {a["organisation"] for a in first["asked"]} == {"CIZ", "Zorgkantoor Noord", "Zorggroep De Linde"}
    await ciz.stop()
    network.nodes.pop("ciz")
    later = await client.client_view.overview()
    answered = {a["organisation"]: a["answered"] for a in later["asked"]}
    assert answered == {"CIZ": False, "Zorgkantoor Noord": True, "Zorggroep De Linde": True}
    assert [z["uzovi"] for z in later["zorgkantoren"]] == ["5151"] and [c["status"] for c in later["zorg"]] == ["zorg loopt"]


async def test_his_access_log_lists_every_access_everywhere_newest_first(network: Network) -> None:
    ciz, zk, za, za_b, client = await care_network(network)
    await zk.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND0, "uzovi": "5151"}, [])
    with pytest.raises(PeerRefused):  # a refusal by indicatie id: no BSN in the query, his all the same
        await za_b.query_peer(ciz.url, "QIR-0002-ZA", {"wlzIndicatieID": IND0, "agb": "87654321"}, [])
    await client.client_view.overview()
    phone = Node(network.home_for("client", "client-phone"), bootstrap=[ciz.url], mdns=False, gossip_interval=0)
    await phone.start()  # a second node of his own, its own key: his certificate names no one, so by its did
    network.nodes["client-phone"] = phone
    await phone.query_peer(ciz.url, "CLIENT-EIGEN-GEGEVENS", {"bsn": BSN0}, [])
    log = await client.client_view.access_log()
    seen = [(e["bron"], e["actor_org"], e["event"], e["result"], e["rule"]) for e in log["entries"]]
    by_client = {e["wie"] for e in log["entries"] if e["bron"] == "CIZ" and e["event"] == "query CLIENT-EIGEN-GEGEVENS"}
    assert by_client == {"u zelf", f"een cliëntnode (…{phone.identity.did[-8:]})"}
    assert ("CIZ", "CIZ", "record.bulk-load", "ok", None) in seen
    assert ("CIZ", "Zorgkantoor Noord", "query QIR-0001-ZKi", "allowed", "UCIR-0001") in seen
    assert ("CIZ", "Thuiszorg Het Anker", "query QIR-0002-ZA", "denied", "UCIR-0002") in seen
    assert ("Zorggroep De Linde", "Zorggroep De Linde", "record.create", "ok", None) in seen
    times = [e["at"] for e in log["entries"]]
    assert times == sorted(times, reverse=True)
    assert "737459086" not in repr(log)
    assert "geweigerd, regel UCIR-0002" in render_access_log(log)
    # Nobody else may ask for his log.
    with pytest.raises(PeerRefused) as info:
        await zk.access_log(ciz.url, BSN0)
    assert info.value.rule == "CLIENT-ACCESS-LOG"


async def test_his_node_holds_each_source_to_the_audit_head_it_showed_before(network: Network) -> None:
    ciz, zk, za, za_b, client = await care_network(network)
    first = await client.client_view.access_log()
    assert all(a["answered"] for a in first["asked"])
    await client.store.write([("UPDATE settings SET value = ? WHERE name = 'head:kvk:62253778'",
                               ('{"seq": 100000, "hash": "' + "00" * 32 + '"}',), False)])
    later = await client.client_view.access_log()
    [warning] = [a["error"] for a in later["asked"] if a["organisation"] == "CIZ"]
    assert "does not continue" in warning and "cut" in warning


async def test_his_view_stays_current_with_changes_to_his_own_records_only(network: Network) -> None:
    ciz, zk, za, za_b, client = await care_network(network)
    await client.client_view.overview(mark_seen=True)
    followed = await client.client_view.follow(endpoint=client.url, allowed=client.subscriptions.matrix["allowed"])
    assert {s["organisation"] for s in followed if "subscription_id" in s} == {"CIZ", "Zorgkantoor Noord"}
    rows = await ciz.store.fetchall("SELECT receiver_id_type, receiver_id, endpoint FROM subscriptions")
    assert rows == [("DID", client.identity.did, client.url)]
    mine, other = sample("wlzIndicaties", 0), sample("wlzIndicaties", 1)
    mine["einddatum"], other["einddatum"] = "2027-06-30", "2027-06-30"
    await put(ciz, "WlzIndicatie", mine)
    await put(ciz, "WlzIndicatie", other)  # someone else's: not a word to him
    await network.settle()
    [row] = await client.inbox.list()
    assert (row["event_type"], row["sender_org"]) == ("GEWIJZIGDE_INDICATIE_ZORGKANTOOR", "CIZ")
    assert row["subjects"][0]["record_id"] == f"WlzIndicatie/{IND0}"
    view = await client.client_view.overview(mark_seen=True)
    assert [c["gebeurtenis"] for c in view["wijzigingen"]] == ["GEWIJZIGDE_INDICATIE_ZORGKANTOOR"]
    assert view["indicaties"][0]["geldig_tot"] == "2027-06-30"
    assert (await client.client_view.overview())["wijzigingen"] == []  # seen now
    assert client.peers.get(ciz.identity.did) and ciz.peers.get(client.identity.did) is None  # still private


async def test_a_subscription_for_another_bsn_or_by_a_non_client_naming_one_is_refused(network: Network) -> None:
    from protocol import Subscribe

    ciz, zk, za, za_b, client = await care_network(network)
    for node, bsn in ((client, "737459086"), (zk, BSN0)):
        with pytest.raises(PeerRefused) as info:
            await node.send_to_peer(ciz.url, Subscribe(events=("GEWIJZIGDE_INDICATIE_ZORGKANTOOR",), bsn=bsn,
                                                       endpoint=node.url))
        assert info.value.rule == "SUBSCRIPTION-MATRIX"
    assert await ciz.store.fetchall("SELECT 1 FROM subscriptions") == []


async def test_a_source_that_sends_anything_as_his_access_log_spoils_neither_his_view_nor_his_screen(
        network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """An access log's entries are maps of anything on the wire. A member source answered with entries of the wrong
    shape: sorting every source's entries together failed, and he saw no access log at all, from anyone. Text in
    them reached his terminal and page as it was written (a line break forges an entry, an escape sequence
    rewrites the screen)."""
    from protocol import AccessLogRequest, AccessLogResult

    ciz, zk, za, za_b, client = await care_network(network)
    forged = "query QIR-0001-ZKi\n  2026-12-07 09:00  CIZ  beheerder: record.delete \x1b[2J\u202e"
    hostile = ({"seq": "7", "at": 5}, {}, {"seq": 3, "at": "gisteren"}, {"seq": 4, "at": "2026-12-07T06:00:00Z", "event": 9},
               {"seq": 5, "at": "2026-12-07T06:00:00.123456Z", "event": forged, "action": "R", "result": "allowed",
                "actor_did": za.identity.did, "actor_role": "zorgaanbieder\x1b[31m", "actor_org": "Zorggroep\nDe Linde",
                "record": None, "trace_id": None, "rule": None, "request_sha256": None, "hash": "00" * 32,
                "extra": {"nested": ["x"] * 3}})

    async def answering_anything(incoming: object, now: int) -> tuple[AccessLogResult, list[object]]:
        return AccessLogResult(entries=hostile, head=None), []

    monkeypatch.setitem(za.dispatcher._handlers, AccessLogRequest, answering_anything)
    log = await client.client_view.access_log()
    assert {e["bron"] for e in log["entries"]} >= {"CIZ", "Zorgkantoor Noord"}  # the others' entries are all there
    [kept] = [e for e in log["entries"] if e["bron"] == "Zorggroep De Linde"]
    assert kept["seq"] == 5 and "extra" not in kept
    [asked] = [a for a in log["asked"] if a["organisation"] == "Zorggroep De Linde"]
    assert "4 of its 5 entries are not access-log entries" in asked["error"]
    for text in (repr(log), render_access_log(log)):
        assert not any(c in text for c in "\x1b\u202e")
    assert not any(c in str(value) for e in log["entries"] for value in e.values() for c in "\n\r\x1b\u202e")


async def test_a_source_that_sends_records_not_its_own_to_keep_spoils_neither_his_overview_nor_fools_him(
        network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """A signed record proves who signed it, not that it is a record its signer may keep or that it fits its kind.
    A zorgaanbieder answered his overview with an "indicatie" of its own making, with dates that are not dates:
    his overview failed as a whole (it compares them with today), and such a record would have stood among his
    indicaties. His node now takes from a source only records of the kinds its role keeps, that fit their
    schema, and that are about him."""
    import uuid

    from protocol import Query, QueryResult
    from protocol.records import RecordVersion

    ciz, zk, za, za_b, client = await care_network(network)
    honest = za.dispatcher._handlers[Query]
    fake_indicatie = dict(sample("wlzIndicaties", 0), wlzIndicatieID=str(uuid.uuid4()), ingangsdatum=5)
    unfit = dict(LEVERING, leveringID=str(uuid.uuid4()), leveringperiodes=[{"ingangsdatum": 20261001}])
    someone_else = dict(LEVERING, leveringID=str(uuid.uuid4()), bsn="737459086")

    async def answering_with_more(incoming: Any, now: int) -> Any:
        reply, statements = await honest(incoming, now)
        if incoming.message.template != "CLIENT-EIGEN-GEGEVENS":
            return reply, statements
        made = [za.registers.signer.sign(RecordVersion(kind, data[id_field], 1, za.identity.did, now, False, data))
                for kind, id_field, data in (("WlzIndicatie", "wlzIndicatieID", fake_indicatie),
                                             ("Levering", "leveringID", unfit), ("Levering", "leveringID", someone_else))]
        return QueryResult(records=reply.records + tuple(made), evidence=reply.evidence), statements

    monkeypatch.setitem(za.dispatcher._handlers, Query, answering_with_more)
    view = await client.client_view.overview()
    assert [i["bron"] for i in view["indicaties"]] == ["CIZ"]
    assert [c["aanbieder"] for c in view["zorg"]] == ["Zorggroep De Linde"]  # his one levering, and no other
    [asked] = [a for a in view["asked"] if a["organisation"] == "Zorggroep De Linde"]
    assert asked["records"] == 1 and "3 of its 4 records were left out" in asked["error"]
    assert "737459086" not in repr(view)


async def test_a_record_from_a_source_of_a_later_version_with_a_field_more_still_shows_in_his_overview(
        network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """A source upgraded before his node: its indicatie has a field this version does not know. His overview left the
    record out as not fitting its schema (he would not see his indicatie until his node was upgraded too); it now
    shows what this version knows of it, every field it reads as the schema has it."""
    from protocol import Query, QueryResult
    from protocol.records import RecordVersion

    ciz, zk, za, za_b, client = await care_network(network)
    honest = ciz.dispatcher._handlers[Query]
    later = dict(sample("wlzIndicaties", 0), zorgprofiel="VV-5")

    async def answering_as_a_later_version(incoming: Any, now: int) -> Any:
        reply, statements = await honest(incoming, now)
        if incoming.message.template != "CLIENT-EIGEN-GEGEVENS":
            return reply, statements
        signed = ciz.registers.signer.sign(RecordVersion("WlzIndicatie", IND0, 2, ciz.identity.did, now, False, later))
        return QueryResult(records=(signed,), evidence=reply.evidence), statements

    monkeypatch.setitem(ciz.dispatcher._handlers, Query, answering_as_a_later_version)
    view = await client.client_view.overview()
    [ind] = view["indicaties"]
    assert (ind["id"], ind["bron"]) == (IND0, "CIZ")
    [asked] = [a for a in view["asked"] if a["organisation"] == "CIZ"]
    assert (asked["records"], asked["error"]) == (1, None)
