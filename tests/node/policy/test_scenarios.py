"""Acceptance scenarios 1-6, 8 and 12 of reference/iwlz.md §3 (the query side), and the care chain beyond it
(13, 14), with real nodes on 127.0.0.1.

Each node is a separate aiohttp server with its own SQLite file; the tests
assert what comes back, the denial codes and rules, and the audit entries
written at the source.
"""

from __future__ import annotations


import pytest

from node.errors import NetworkError, PeerRefused
from node.service import Node
from tests.node.kit import BSN0, IND0, IND1, LEVERING_ID, SPEC0, Network, levering, put, sample

pytestmark = pytest.mark.asyncio



async def refused(coro) -> PeerRefused:
    with pytest.raises(PeerRefused) as info:
        await coro
    return info.value


async def last_audit(node: Node):
    return (await node.audit.entries(limit=10_000))[-1]


async def registered(network: Network, *names: str) -> list[Node]:
    nodes = await network.start("ciz", "zk5151", *names)
    ciz, zk = nodes[0], nodes[1]
    for i in range(3):
        await put(ciz, "WlzIndicatie", sample("wlzIndicaties", i))
    bem = sample("bemiddelingen", 0)
    bem["bemiddelingspecificatie"][0]["pgbPercentage"] = 20
    await put(zk, "Bemiddeling", bem)
    await put(zk, "Bemiddeling", sample("bemiddelingen", 1))
    await network.settle()
    return nodes


async def test_1_responsible_zorgkantoor_reads_the_indicatie(network: Network) -> None:
    ciz, zk = await registered(network)
    [(record, source, _)] = await zk.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND0, "uzovi": "5151"}, [])
    expected = {k: v for k, v in sample("wlzIndicaties", 0).items() if v is not None}
    expected["geindiceerdZorgzwaartepakket"] = [{k: v for k, v in z.items() if v is not None} for z in expected["geindiceerdZorgzwaartepakket"]]
    assert record.data == expected
    assert record.data["client"]["geslachtsnaam"] == "Jansen"
    assert source.did == ciz.identity.did and record.source == ciz.identity.did
    entry = await last_audit(ciz)
    assert (entry.event, entry.action, entry.result, entry.rule) == ("query QIR-0001-ZKi", "R", "allowed", "UCIR-0001")
    assert (entry.actor_did, entry.actor_role, entry.actor_org) == (zk.identity.did, "zorgkantoor", "Zorgkantoor Noord")
    assert entry.subject == BSN0 and entry.record == f"WlzIndicatie/{IND0}"
    assert entry.request is not None and entry.trace_id


async def test_2_other_zorgkantoor_gets_nothing_and_is_refused_with_anothers_code(network: Network) -> None:
    ciz, zk, zk5050 = await registered(network, "zk5050")
    assert await zk5050.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND0, "uzovi": "5050"}, []) == []
    assert (await last_audit(ciz)).result == "empty"
    error = await refused(zk5050.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND0, "uzovi": "5151"}, []))
    assert (error.code, error.rule) == ("denied", "UCIR-0001")
    entry = await last_audit(ciz)
    assert (entry.result, entry.rule, entry.actor_did) == ("denied", "UCIR-0001", zk5050.identity.did)


@pytest.mark.parametrize(
    "template,params,code",
    [
        ("QIR-0001-ZKi", {"wlzIndicatieID": IND0}, "malformed"),  # required parameter missing
        ("QIR-0001-ZKi", {"wlzIndicatieID": IND0, "uzovi": "5151", "bsn": BSN0}, "malformed"),  # outside the template
        ("QBR-0007-ZK", {"bemiddelingID": IND0, "uzovi": "5151"}, "not-found"),  # CIZ holds no bemiddelingen
    ],
)
async def test_3_queries_outside_a_template_are_refused_before_the_register(network: Network, template, params, code) -> None:
    ciz, zk = await registered(network)
    before = await ciz.audit.entries(limit=10_000)
    assert before
    error = await refused(zk.query_peer(ciz.url, template, params, []))
    assert error.code == code
    assert await ciz.audit.entries(limit=10_000) == before


async def test_4_provider_reads_its_specificatie_without_pgb_percentage(network: Network) -> None:
    ciz, zk, za = await registered(network, "za_a")
    [(view, source, _)] = await za.query_peer(zk.url, "QBR-0001-ZA", {"bemiddelingspecificatieID": SPEC0, "instelling": "12345678"}, [])
    assert view.kind == "Bemiddelingspecificatie" and view.record_id == SPEC0
    assert view.data["instelling"] == "12345678" and view.data["wlzIndicatieID"] == IND0
    assert view.data["bemiddelingID"] == "ca6cd66c-78e8-45bc-afb7-3578f78e1ffa"
    assert view.data["client"] == {"clientID": "e2a214e8-bbe9-4675-9d52-490575ffc53d", "bsn": BSN0}
    assert "pgbPercentage" not in view.data and view.data["percentage"] == 100
    stored = await zk.registers.current("Bemiddeling", "ca6cd66c-78e8-45bc-afb7-3578f78e1ffa")
    assert stored.data["bemiddelingspecificatie"][0]["pgbPercentage"] == 20
    assert source.role == "zorgkantoor"


async def test_5_provider_without_specificatie_is_refused(network: Network) -> None:
    ciz, zk, za_a, za_b = await registered(network, "za_a", "za_b")
    [(_, _, evidence)] = await za_a.query_peer(zk.url, "QBR-0001-ZA", {"bemiddelingspecificatieID": SPEC0, "instelling": "12345678"}, [])
    error = await refused(za_b.query_peer(ciz.url, "QIR-0002-ZA", {"wlzIndicatieID": IND0, "agb": "87654321"}, []))
    assert (error.code, error.rule) == ("denied", "UCIR-0002")
    # Someone else's evidence does not help either.
    error = await refused(za_b.query_peer(ciz.url, "QIR-0002-ZA", {"wlzIndicatieID": IND0, "agb": "87654321"}, [evidence]))
    assert (error.code, error.rule) == ("denied", "UCIR-0002")
    assert await za_b.query_peer(zk.url, "QBR-0001-ZA", {"bemiddelingspecificatieID": SPEC0, "instelling": "87654321"}, []) == []
    error = await refused(za_b.query_peer(zk.url, "QBR-0001-ZA", {"bemiddelingspecificatieID": SPEC0, "instelling": "12345678"}, []))
    assert (error.code, error.rule) == ("denied", "QBR-0001-ZA")
    entry = await last_audit(zk)
    assert (entry.result, entry.actor_org) == ("denied", "Thuiszorg Het Anker")


async def test_6_provider_with_specificatie_reads_the_indicatie(network: Network) -> None:
    ciz, zk, za = await registered(network, "za_a")
    [(_, _, evidence)] = await za.query_peer(zk.url, "QBR-0001-ZA", {"bemiddelingspecificatieID": SPEC0, "instelling": "12345678"}, [])
    [(record, _, _)] = await za.query_peer(ciz.url, "QIR-0002-ZA", {"wlzIndicatieID": IND0, "agb": "12345678"}, [evidence])
    assert record.data["wlzIndicatieID"] == IND0
    entry = await last_audit(ciz)
    assert (entry.result, entry.rule, entry.actor_org) == ("allowed", "UCIR-0002", "Zorggroep De Linde")
    # The evidence is for IND0 only.
    error = await refused(za.query_peer(ciz.url, "QIR-0002-ZA", {"wlzIndicatieID": IND1, "agb": "12345678"}, [evidence]))
    assert error.rule == "UCIR-0002"


async def test_stale_evidence_is_confirmed_with_its_source(network: Network) -> None:
    ciz, zk, za = await registered(network, "za_a")
    [(_, _, evidence)] = await za.query_peer(zk.url, "QBR-0001-ZA", {"bemiddelingspecificatieID": SPEC0, "instelling": "12345678"}, [])
    ciz.pdp.freshness = -1  # every piece of evidence counts as old: CIZ asks 5151
    assert len(await za.query_peer(ciz.url, "QIR-0002-ZA", {"wlzIndicatieID": IND0, "agb": "12345678"}, [evidence])) == 1
    confirmations = [e for e in await zk.audit.entries(limit=10_000) if e.event == "query RECORD-STATUS"]
    assert confirmations and confirmations[-1].actor_did == ciz.identity.did
    changed = sample("bemiddelingen", 0)
    changed["bemiddelingspecificatie"][0]["percentage"] = 50
    await put(zk, "Bemiddeling", changed)
    error = await refused(za.query_peer(ciz.url, "QIR-0002-ZA", {"wlzIndicatieID": IND0, "agb": "12345678"}, [evidence]))
    assert error.rule == "UCIR-0002"


async def test_8_overdracht_lets_the_new_zorgkantoor_read(network: Network) -> None:
    ciz, zk, zk5050 = await registered(network, "zk5050")
    bem_id = "e164f982-15c0-40b7-babb-1e8530a037ef"
    assert await zk5050.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND1, "uzovi": "5050"}, []) == []
    assert await zk5050.query_peer(zk.url, "QBR-0007-ZK", {"bemiddelingID": bem_id, "uzovi": "5050"}, []) == []
    moved = sample("bemiddelingen", 1)
    moved["overdracht"] = {"overdrachtID": "4b8e2f6a-9c1d-4e3f-8a5b-7c9d1e2f3a4b", "verantwoordelijkZorgkantoor": "5050",
                           "overdrachtDatum": "2026-10-01", "verhuisDatum": "2026-09-15",
                           "overdrachtspecificatie": [{"leveringsstatus": "1"}]}
    await put(zk, "Bemiddeling", moved)
    [(bemiddeling, _, evidence)] = await zk5050.query_peer(zk.url, "QBR-0007-ZK", {"bemiddelingID": bem_id, "uzovi": "5050"}, [])
    assert bemiddeling.version == 2 and bemiddeling.data["overdracht"]["verantwoordelijkZorgkantoor"] == "5050"
    [(record, _, _)] = await zk5050.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND1, "uzovi": "5050"}, [evidence])
    assert record.data["wlzIndicatieID"] == IND1
    entry = await last_audit(ciz)
    assert (entry.result, entry.rule) == ("allowed", "UCIR-0003")
    # The same Overdracht does not open another indicatie: presented for it, it is a denial with the rule named.
    error = await refused(zk5050.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND0, "uzovi": "5050"}, [evidence]))
    assert (error.code, error.rule) == ("denied", "UCIR-0003")


async def test_12_revoked_member_is_refused(network: Network) -> None:
    ciz, zk = await registered(network)
    cert_id = zk.member.cert_id
    version, data = network.net.revoke([cert_id.hex()], now=ciz.now())
    assert ciz.adopt_revocation_list(data)
    with pytest.raises(NetworkError, match="revoked"):
        await zk.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND0, "uzovi": "5151"}, [])


async def test_ciz_sees_only_who_is_responsible(network: Network) -> None:
    ciz, zk = await registered(network)
    [(view, _, _)] = await ciz.query_peer(zk.url, "QBR-0010-CIZ", {"wlzIndicatieID": IND0}, [])
    assert view.data == {"bemiddelingID": "ca6cd66c-78e8-45bc-afb7-3578f78e1ffa", "wlzIndicatieID": IND0,
                         "verantwoordelijkZorgkantoor": "5151"}
    assert (await last_audit(zk)).rule == "BRA0011"


async def test_client_reads_his_own_data_and_who_looked_at_it(network: Network) -> None:
    ciz, zk, client, za = await registered(network, "client", "za_a")
    await zk.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND0, "uzovi": "5151"}, [])
    at_ciz = await client.query_peer(ciz.url, "CLIENT-EIGEN-GEGEVENS", {"bsn": BSN0}, [])
    at_zk = await client.query_peer(zk.url, "CLIENT-EIGEN-GEGEVENS", {"bsn": BSN0}, [])
    assert [r.record_id for r, _, _ in at_ciz] == [IND0]
    assert [r.record_id for r, _, _ in at_zk] == ["ca6cd66c-78e8-45bc-afb7-3578f78e1ffa"]
    error = await refused(client.query_peer(ciz.url, "CLIENT-EIGEN-GEGEVENS", {"bsn": "737459086"}, []))
    assert (error.code, error.rule) == ("denied", "CLIENT-OWN-DATA")
    error = await refused(za.query_peer(ciz.url, "CLIENT-EIGEN-GEGEVENS", {"bsn": BSN0}, []))
    assert error.code == "denied"
    log = await client.access_log(ciz.url, BSN0)
    seen = [(e["actor_org"], e["event"], e["result"]) for e in log]
    assert ("Zorgkantoor Noord", "query QIR-0001-ZKi", "allowed") in seen
    assert ("client", "query CLIENT-EIGEN-GEGEVENS", "allowed") in seen  # a client's certificate names no one
    assert all("subject" not in e for e in log)
    error = await refused(za.access_log(ciz.url, BSN0))
    assert (error.code, error.rule) == ("denied", "CLIENT-ACCESS-LOG")


async def test_history_returns_every_version(network: Network) -> None:
    ciz, zk, client = await registered(network, "client")
    changed = sample("wlzIndicaties", 0)
    changed["einddatum"] = "2027-01-01"
    await put(ciz, "WlzIndicatie", changed)
    await ciz.registers.delete("WlzIndicatie", sample("wlzIndicaties", 1)["wlzIndicatieID"], actor=ciz.actor, now=ciz.now())
    current = await zk.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND0, "uzovi": "5151"}, [])
    assert [r.version for r, _, _ in current] == [2]
    history = await zk.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND0, "uzovi": "5151"}, [], history=True)
    assert [(r.version, r.data["einddatum"] if "einddatum" in r.data else None) for r, _, _ in history] == [(1, None), (2, "2027-01-01")]
    deleted = await zk.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND1, "uzovi": "5151"}, [], history=True)
    assert [(r.version, r.deleted) for r, _, _ in deleted] == [(1, False), (2, True)]
    assert await zk.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND1, "uzovi": "5151"}, []) == []


async def test_zorgaanbod_is_readable_by_every_member(network: Network) -> None:
    nodes = await network.start("za_a", "cak", "client")
    za, cak, client = nodes
    offer = {"zorgaanbodID": "5d1e7a3c-2b4f-4c6e-9a8b-1c3e5f7a9b2d", "instelling": "12345678", "regio": "5151",
             "zzpCodes": ["5VV"], "leveringsvormen": ["1"], "vrijeCapaciteit": 3, "peildatum": "2026-11-01"}
    await put(za, "Zorgaanbod", offer)
    for reader in (cak, client):
        [(record, _, _)] = await reader.query_peer(za.url, "ZORGAANBOD", {}, [])
        assert record.data["vrijeCapaciteit"] == 3


async def test_13_the_care_chain_each_party_reads_only_what_it_needs(network: Network) -> None:
    """Care at the provider: the responsible zorgkantoor sees the periods, not the client's bsn or the verzoeken;
    another zorgkantoor nothing; the CAK the periods with the bsn; a provider only when asked to help; the eigen
    bijdrage: the zorgkantoor that one exists, the client its amount."""
    ciz, zk, cak, za, za_b, zk5050, client = await registered(network, "cak", "za_a", "za_b", "zk5050", "client")
    verzoek = {"verzoekID": "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e", "aanbieder": "87654321", "soort": "dagbesteding",
               "datum": "2026-10-15"}
    await put(za, "Levering", levering(verzoeken=[verzoek]))
    await network.settle()
    by_id = {"leveringID": LEVERING_ID}
    [(care, _, _)] = await zk.query_peer(za.url, "QLR-0002-ZK", {**by_id, "uzovi": "5151"}, [])
    assert care.data["leveringperiodes"] == [{"ingangsdatum": "2026-10-01"}]
    assert "bsn" not in care.data and "verzoeken" not in care.data
    assert await zk5050.query_peer(za.url, "QLR-0002-ZK", {**by_id, "uzovi": "5050"}, []) == []
    error = await refused(zk5050.query_peer(za.url, "QLR-0002-ZK", {**by_id, "uzovi": "5151"}, []))
    assert (error.code, error.rule) == ("denied", "QLR-0002-ZK")
    [(for_cak, _, _)] = await cak.query_peer(za.url, "QLR-0003-CAK", {**by_id, "kvk": "27364237"}, [])
    assert for_cak.data["bsn"] == BSN0 and "verzoeken" not in for_cak.data
    [(asked, _, _)] = await za_b.query_peer(za.url, "QLR-0004-ZA", {**by_id, "agb": "87654321"}, [])
    assert asked.data["verzoeken"] == [verzoek] and "leveringperiodes" not in asked.data
    error = await refused(zk.query_peer(za.url, "QLR-0004-ZA", {**by_id, "agb": "87654321"}, []))
    assert (error.code, error.rule) == ("denied", "DENY-BY-DEFAULT")
    [(exists, _, _)] = await zk.query_peer(cak.url, "QEB-0001-ZK", {"wlzIndicatieID": IND0, "uzovi": "5151"}, [])
    assert exists.data["status"] == "lopend" and "bedragPerMaand" not in exists.data and "bsn" not in exists.data
    assert await zk5050.query_peer(cak.url, "QEB-0001-ZK", {"wlzIndicatieID": IND0, "uzovi": "5050"}, []) == []
    own = await client.query_peer(cak.url, "CLIENT-EIGEN-GEGEVENS", {"bsn": BSN0}, [])
    assert [(r.kind, r.data["bedragPerMaand"]) for r, _, _ in own] == [("EigenBijdrage", 876)]
    # The client sees at the provider who read his care, and that the refused reads were refused.
    seen = {(e["actor_org"], e["event"], e["result"]) for e in await client.access_log(za.url, BSN0)}
    assert {("Zorgkantoor Noord", "query QLR-0002-ZK", "allowed"), ("CAK", "query QLR-0003-CAK", "allowed"),
            ("Thuiszorg Het Anker", "query QLR-0004-ZA", "allowed"),
            ("Zorgkantoor Zuid", "query QLR-0002-ZK", "denied")} <= seen


async def test_14_a_melding_answer_is_read_only_by_its_reporter(network: Network) -> None:
    ciz, zk, zk5050 = await registered(network, "zk5050")
    melding_id = await zk.meldingen_sent.send(ciz.url, record=f"WlzIndicatie/{IND0}", rule="IRG0012", description="",
                                              now=zk.now())
    await network.settle()
    [(status, _, _)] = await zk.query_peer(ciz.url, "MELDING-STATUS", {"meldingID": melding_id}, [])
    assert status.data["status"] == "ontvangen" and "bsn" not in status.data
    assert await zk5050.query_peer(ciz.url, "MELDING-STATUS", {"meldingID": melding_id}, []) == []
