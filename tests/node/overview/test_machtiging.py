"""A client's machtiging, with real nodes: his gemachtigde (a person, with his own client's node) sees what he sees,
for him, at every source of his records; the client sees in his access log that his gemachtigde looked; and no one
else gets in by one: not another client, not with a machtiging he forged, not a party outside the matrix, not after
it ended or was withdrawn."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from node.cli.client import render_access_log, render_overview
from node.errors import NodeError, PeerRefused
from node.service import Node
from protocol import AccessLogRequest
from protocol.records import RecordVersion
from tests.node.kit import BSN0, IND0, Network, put, sample
from tests.node.overview.test_client_view import LEVERING

pytestmark = pytest.mark.asyncio
OTHER_BSN = "737459086"  # the gemachtigde's own (client2's certificate)


async def chain(network: Network) -> tuple[Node, ...]:
    """CIZ, his zorgkantoor, his provider (a levering) and one with no part in his care; him and his gemachtigde."""
    ciz, zk, za, za_b, client, gemachtigde = await network.start("ciz", "zk5151", "za_a", "za_b", "client", "client2")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await put(zk, "Bemiddeling", sample("bemiddelingen", 0))
    await network.settle()
    await put(za, "Levering", LEVERING)
    await network.settle()
    return ciz, zk, za, za_b, client, gemachtigde


async def machtig(client: Node, gemachtigde: Node, until: str = "2099-12-31") -> str:
    result = await client.client_view.grant_machtiging(to=gemachtigde.identity.did, until=until,
                                                       endpoint=gemachtigde.url)
    assert result["handed_over"], result
    return str(result["id"])


async def test_his_gemachtigde_sees_his_data_and_his_log_and_he_sees_that_the_gemachtigde_looked(
        network: Network) -> None:
    ciz, zk, za, za_b, client, gemachtigde = await chain(network)
    machtiging = await machtig(client, gemachtigde)
    [held] = await gemachtigde.client_view.represented()
    assert (held["id"], held["bsn"], held["client_node"]) == (machtiging, BSN0, client.identity.did)

    view = await gemachtigde.client_view.overview(namens=machtiging)
    assert {a["organisation"]: a["records"] for a in view["asked"]} == {
        "CIZ": 1, "Zorgkantoor Noord": 1, "Zorggroep De Linde": 1}  # along his chain, not Thuiszorg Het Anker
    assert [i["id"] for i in view["indicaties"]] == [IND0]
    assert [c["status"] for c in view["zorg"]] == ["zorg loopt"]
    assert view["namens"] == {"id": machtiging, "bsn": BSN0, "volgt": False}
    assert OTHER_BSN not in repr(view)  # the gemachtigde's own data is not mixed in
    assert "gemachtigde" in render_overview(view)
    # Each source allowed it by the machtiging rule, for the gemachtigde, about the client.
    for source in (ciz, zk, za):
        entry = (await source.audit.entries(limit=10_000, newest_first=True))[0]
        assert (entry.rule, entry.result, entry.actor_did, entry.subject) == (
            "CLIENT-GEMACHTIGDE", "allowed", gemachtigde.identity.did, BSN0)
    # Nothing went to the outsider: it learned neither BSN.
    assert not [e for e in await za_b.audit.entries(limit=10_000) if e.subject in (BSN0, OTHER_BSN)]

    log = await gemachtigde.client_view.access_log(namens=machtiging)
    assert {a["organisation"] for a in log["asked"] if a["answered"]} == {"CIZ", "Zorgkantoor Noord", "Zorggroep De Linde"}
    assert "u (gemachtigde)" in {e["wie"] for e in log["entries"]}
    own = await client.client_view.access_log()
    who = {(e["bron"], e["wie"], e["rule"]) for e in own["entries"]}
    short = gemachtigde.identity.did[-8:]
    assert ("CIZ", f"uw gemachtigde (…{short})", "CLIENT-GEMACHTIGDE") in who
    assert ("CIZ", f"uw gemachtigde (…{short})", "CLIENT-ACCESS-LOG-GEMACHTIGDE") in who
    assert f"uw gemachtigde (…{short})" in render_access_log(own)


async def test_no_one_reads_his_data_as_gemachtigde_without_his_machtiging(network: Network) -> None:
    """Attack, by another client (the would-be gemachtigde): he asks for Jansen's data and his access log with
    nothing, with a machtiging he signed himself, with a consent Jansen gave a provider, and with Jansen's
    machtiging to someone else."""
    ciz, zk, za, za_b, client, visser = await chain(network)

    async def refused(evidence: list[bytes], template: str = "CLIENT-EIGEN-GEGEVENS") -> str:
        with pytest.raises(PeerRefused) as info:
            await visser.router.query(ciz.identity.did, template, {"bsn": BSN0}, evidence)
        assert (info.value.code, info.value.rule) == ("denied", "CLIENT-OWN-DATA")
        return info.value.reason

    assert "no machtiging was presented" in await refused([])
    forged = {"toestemmingID": "0f0e5d3c-1b2a-4c9d-8e7f-6a5b4c3d2e1f", "bsn": BSN0, "ontvanger": {"did": visser.identity.did},
              "bronnen": ["*"], "templates": ["CLIENT-EIGEN-GEGEVENS", "CLIENT-ACCESS-LOG"], "doel": "vertegenwoordiging",
              "geldigTot": "2099-12-31", "bsnSleutel": visser.home.bsn_key().hex()}
    signed = visser.registers.signer.sign(RecordVersion("Toestemming", forged["toestemmingID"], 1, visser.identity.did,
                                                        visser.now(), False, forged))
    assert "not signed by the client" in await refused([signed])
    # A consent Jansen gave a provider, for every source: not his machtiging, and not for Visser.
    consent = await client.client_view.grant(to="agb:87654321", templates=["CLIENT-EIGEN-GEGEVENS"],
                                             purpose="vertegenwoordiging", until="2099-12-31", sources=["*"])
    assert "no machtiging" in await refused([await _signed(client, consent["id"])])
    # Jansen's machtiging to his daughter (za_b stands in for another did: a provider's node).
    other = await client.client_view.grant(to=za_b.identity.did, templates=["CLIENT-EIGEN-GEGEVENS"],
                                           purpose="vertegenwoordiging", until="2099-12-31", sources=["*"])
    assert "given to another party" in await refused([await _signed(client, other["id"])])
    # Nor his access log.
    with pytest.raises(PeerRefused) as info:
        await visser.router.send(ciz.identity.did, AccessLogRequest(bsn=BSN0, since=0, machtiging=signed))
    assert info.value.rule == "CLIENT-ACCESS-LOG" and "not signed by the client" in info.value.reason
    with pytest.raises(NodeError):
        await visser.client_view.overview(namens=forged["toestemmingID"])  # his node holds no such machtiging
    # Every refusal is in Jansen's log, with Visser's node as who asked.
    entries = [e for e in await ciz.audit.entries(limit=10_000) if e.actor_did == visser.identity.did]
    assert entries and all(e.subject == BSN0 and e.result == "denied" for e in entries), [(e.event, e.subject, e.result) for e in entries]


async def _signed(node: Node, record_id: str) -> bytes:
    stored = await node.registers.current("Toestemming", record_id)
    assert stored is not None
    return stored.signed


async def test_a_party_outside_the_matrix_gets_nothing_by_a_machtiging_form(network: Network) -> None:
    """Attack, by a provider Jansen gave a consent 'vertegenwoordiging' for every source: '*' opens nothing to a
    party, only to a person with his own client's node (a machtiging)."""
    ciz, zk, za, za_b, client, visser = await chain(network)
    consent = await client.client_view.grant(to="agb:87654321", templates=["GEGEVENS-MET-TOESTEMMING"],
                                             purpose="vertegenwoordiging", until="2099-12-31", sources=["*"])
    with pytest.raises(PeerRefused) as info:
        await za_b.query_peer(ciz.url, "GEGEVENS-MET-TOESTEMMING", {"bsn": BSN0, "doel": "vertegenwoordiging"},
                              [await _signed(client, consent["id"])])
    assert info.value.rule == "TOESTEMMING" and "does not name this source" in info.value.reason
    with pytest.raises(PeerRefused) as info:  # and the client's own template is not a party's
        await za_b.query_peer(ciz.url, "CLIENT-EIGEN-GEGEVENS", {"bsn": BSN0}, [await _signed(client, consent["id"])])
    assert info.value.code == "denied"


async def test_a_machtiging_that_ended_or_was_withdrawn_opens_nothing_at_any_source_of_his(network: Network) -> None:
    ciz, zk, za, za_b, client, gemachtigde = await chain(network)
    ended = await machtig(client, gemachtigde, until="2020-01-01")
    with pytest.raises(NodeError):
        await gemachtigde.client_view.overview(namens=ended)  # his node no longer acts on it
    with pytest.raises(PeerRefused) as info:
        await gemachtigde.router.query(ciz.identity.did, "CLIENT-EIGEN-GEGEVENS", {"bsn": BSN0},
                                       [await _signed(client, ended)])
    assert "it has ended" in info.value.reason

    machtiging = await machtig(client, gemachtigde)
    view = await gemachtigde.client_view.overview(namens=machtiging)
    assert {a["organisation"] for a in view["asked"] if a["records"]} == {"CIZ", "Zorgkantoor Noord", "Zorggroep De Linde"}
    client.outbox.first_delay, client.outbox.max_delay = 0.05, 0.2
    await client.client_view.revoke(machtiging)  # he never opened his overview: his node follows his chain now
    deadline = time.monotonic() + 10
    while len({r["receiver_id"] for r in await client.outbox.list() if r["status"] == "delivered"}) < 3 \
            and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert {r["receiver_id"]: r["status"] for r in await client.outbox.list()} == {
        "62253778": "delivered", "5151": "delivered", "12345678": "delivered"}  # CIZ, his zorgkantoor, his provider
    view = await gemachtigde.client_view.overview(namens=machtiging)
    assert all(a["records"] == 0 and "CLIENT-OWN-DATA" in (a["error"] or "") for a in view["asked"])
    log = await gemachtigde.client_view.access_log(namens=machtiging)
    assert not log["entries"] and all(not a["answered"] for a in log["asked"])
    [listed] = [c for c in await client.client_view.consents() if c["id"] == machtiging]
    assert listed["ingetrokken"] is True


async def test_a_machtiging_goes_only_to_the_node_it_names(network: Network) -> None:
    """It names his BSN: handed to the endpoint given only when the node there is the did it names."""
    ciz, zk, za, za_b, client, gemachtigde = await chain(network)
    result = await client.client_view.grant_machtiging(to=gemachtigde.identity.did, until="2099-12-31", endpoint=za_b.url)
    assert not result["handed_over"] and "is not" in result["error"]
    assert not await za_b.store.fetchall("SELECT 1 FROM evidence WHERE kind = 'Toestemming'")
    assert await client.client_view.hand_over(result["id"], gemachtigde.url)
    assert [m["id"] for m in await gemachtigde.client_view.represented()] == [result["id"]]


async def test_through_the_cli_his_daughter_is_given_a_machtiging_and_reads_his_data_masked_unless_asked(
        network: Network, capsys: pytest.CaptureFixture[str]) -> None:
    from node.cli import main

    ciz, zk, za, za_b, client, dochter = await chain(network)
    home, hers = str(client.home.path), str(dochter.home.path)
    assert await asyncio.to_thread(main, ["client", "namens", hers]) == 0
    printed = capsys.readouterr().out
    assert "(geen machtigingen ontvangen)" in printed and f"--to {dochter.identity.did} --endpoint {dochter.url}" in printed
    assert await asyncio.to_thread(main, ["--json", "machtiging", "grant", home, "--to", dochter.identity.did,
                                          "--endpoint", dochter.url, "--until", "2099-12-31"]) == 0
    given = json.loads(capsys.readouterr().out)
    assert given["handed_over"] is True
    assert await asyncio.to_thread(main, ["client", "namens", hers]) == 0
    assert f"{given['id']}: cliënt met BSN ***" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["client", "overview", hers, "--namens", given["id"]]) == 0
    shown = capsys.readouterr().out
    assert "Gegevens van de cliënt met BSN *** bij alle bronnen (u bent zijn gemachtigde)" in shown and BSN0 not in shown
    assert "Zorggroep De Linde: zorg loopt" in shown
    assert await asyncio.to_thread(main, ["client", "overview", hers, "--namens", given["id"], "--show-personal-data"]) == 0
    assert f"BSN {BSN0}" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["client", "follow", hers, "--namens", given["id"]]) == 0
    assert "CIZ: volgt" in capsys.readouterr().out
    changed = sample("wlzIndicaties", 0)
    changed["einddatum"] = "2027-06-30"
    await put(ciz, "WlzIndicatie", changed)
    await network.settle()
    assert await asyncio.to_thread(main, ["client", "overview", hers, "--namens", given["id"]]) == 0
    assert "Wijzigingen in zijn gegevens die u volgt: 1" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["client", "unfollow", hers, "--namens", given["id"]]) == 0
    assert "CIZ: volgt niet meer" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["client", "overview", hers, "--namens", given["id"]]) == 0
    assert "U volgt de wijzigingen in zijn gegevens niet" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["client", "access-log", home]) == 0
    assert f"uw gemachtigde (…{dochter.identity.did[-8:]})" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["machtiging", "revoke", home, given["id"]]) == 0
    assert "ingetrokken" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["client", "namens", hers]) == 0
    assert f"{given['id']}: cliënt met BSN ***, tot en met 2099-12-31: door hem ingetrokken" in capsys.readouterr().out


async def test_a_machtiging_opens_only_what_it_covers_and_only_for_the_client_who_signed_it(network: Network) -> None:
    """Attack, by a gemachtigde: with a machtiging that covers his data but not his access log, she asks for the log;
    with Jansen's machtiging, she asks for another client's data."""
    ciz, zk, za, za_b, client, dochter = await chain(network)
    data_only = await client.client_view.grant(to=dochter.identity.did, templates=["CLIENT-EIGEN-GEGEVENS"],
                                               purpose="vertegenwoordiging", until="2099-12-31", sources=["*"],
                                               endpoint=dochter.url)
    signed = await _signed(client, data_only["id"])
    assert len(await dochter.router.query(ciz.identity.did, "CLIENT-EIGEN-GEGEVENS", {"bsn": BSN0}, [signed])) == 1
    with pytest.raises(PeerRefused) as info:
        await dochter.router.send(ciz.identity.did, AccessLogRequest(bsn=BSN0, since=0, machtiging=signed))
    assert info.value.rule == "CLIENT-ACCESS-LOG" and "does not cover CLIENT-ACCESS-LOG" in info.value.reason
    another = "123456782"  # a BSN that is neither hers nor Jansen's
    with pytest.raises(PeerRefused) as info:
        await dochter.router.query(ciz.identity.did, "CLIENT-EIGEN-GEGEVENS", {"bsn": another}, [signed])
    assert info.value.rule == "CLIENT-OWN-DATA" and "not signed by the client" in info.value.reason
    [entry] = [e for e in await ciz.audit.entries(limit=10_000) if e.subject == another]
    assert (entry.result, entry.actor_did) == ("denied", dochter.identity.did)


async def test_a_source_his_chain_reached_only_after_the_withdrawal_asks_his_node_and_refuses_her(
        network: Network) -> None:
    """Attack by a gemachtigde whose machtiging he withdrew: it names every source, and his withdrawal went to the
    sources his chain led to then. Before, a provider that took up his care after the withdrawal let her read his
    data with it until its geldigTot: it never heard of the withdrawal, and a consent was not asked after. Now a
    machtiging older than a source's freshness bound is confirmed with his node, at the endpoint it names, as other
    evidence is with its source; one that cannot be confirmed opens nothing."""
    ciz, zk, za, za_b, client, gemachtigde = await chain(network)
    machtiging = await machtig(client, gemachtigde)
    [signed] = [bytes(s) for s, in await gemachtigde.store.fetchall("SELECT signed FROM evidence WHERE kind = 'Toestemming'")]
    za_b.pdp.freshness = -1  # every machtiging counts as older than Thuiszorg Het Anker's bound

    async def ask(evidence: bytes) -> list[object]:
        return await gemachtigde.router.query(za_b.identity.did, "CLIENT-EIGEN-GEGEVENS", {"bsn": BSN0}, [evidence])

    assert await ask(signed) == []  # confirmed with his node; nothing of his there yet
    asked = [e for e in await client.audit.entries(limit=10_000) if e.event == "query RECORD-STATUS"]
    assert [(e.actor_did, e.result) for e in asked] == [(za_b.identity.did, "allowed")]

    client.outbox.first_delay, client.outbox.max_delay = 0.05, 0.2
    await client.client_view.revoke(machtiging)
    deadline = time.monotonic() + 10
    while len([r for r in await client.outbox.list() if r["status"] == "delivered"]) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert za_b.identity.did not in {r["receiver_did"] for r in await client.outbox.list()}
    # Then his zorgkantoor assigns his care to Thuiszorg Het Anker as well, which starts it.
    bemiddeling = sample("bemiddelingen", 0)
    spec = dict(bemiddeling["bemiddelingspecificatie"][0], bemiddelingspecificatieID="0b9c8d7e-6f5a-4b3c-9d2e-1f0a9b8c7d6e",
                instelling="87654321", leveringsvorm="2")
    await put(zk, "Bemiddeling", dict(bemiddeling, bemiddelingspecificatie=[*bemiddeling["bemiddelingspecificatie"], spec]))
    await network.settle()
    await put(za_b, "Levering", dict(LEVERING, leveringID="1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
                                     bemiddelingspecificatieID=spec["bemiddelingspecificatieID"]))
    with pytest.raises(PeerRefused) as info:
        await ask(signed)
    assert (info.value.code, info.value.rule) == ("denied", "CLIENT-OWN-DATA")
    assert "the Toestemming presented is older than this node's freshness bound, and its signer says it no longer " \
           "stands" in info.value.reason

    # His node cannot be reached: an old machtiging opens nothing; one within the bound is used as it is.
    second = await machtig(client, gemachtigde)
    [held] = [bytes(s) for s, in await gemachtigde.store.fetchall(
        "SELECT signed FROM evidence WHERE kind = 'Toestemming' AND record_id = ?", (second,))]
    await client.stop()
    network.nodes.pop("client")
    with pytest.raises(PeerRefused) as info:
        await ask(held)
    assert "its signer could not be asked whether it still stands" in info.value.reason
    za_b.pdp.freshness = 3600
    [(record, _, _)] = await ask(held)
    assert record.kind == "Levering"


@pytest.mark.parametrize("shape", [{"bronnen": 5}, {"bronnen": [["*"]]}, {"ontvanger": "did"}, {"templates": 7},
                                   {"geldigTot": 5}, {"doel": ["vertegenwoordiging"]}],
                         ids=["bronnen-int", "bronnen-nested", "ontvanger-text", "templates-int", "until-int", "doel-list"])
async def test_a_consent_of_another_shape_is_refused_with_a_reason(network: Network, shape: dict[str, object]) -> None:
    """Attack: a client signs what he likes. Before, a machtiging whose bronnen was a number or held a list made the
    source's decision fail (the requester got an error not bound to his request, and the source logged a
    traceback), and one whose ontvanger was text did the same at the node it was handed to."""
    from protocol import Consent

    ciz, client, other = await network.start("ciz", "client", "client2")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    data = {"toestemmingID": "0f0e5d3c-1b2a-4c9d-8e7f-6a5b4c3d2e1f", "bsn": BSN0, "ontvanger": {"did": other.identity.did},
            "bronnen": ["*"], "templates": ["CLIENT-EIGEN-GEGEVENS"], "doel": "vertegenwoordiging",
            "geldigTot": "2099-12-31", "bsnSleutel": client.home.bsn_key().hex(), "endpoint": client.url, **shape}
    signed = client.registers.signer.sign(RecordVersion("Toestemming", data["toestemmingID"], 1, client.identity.did,
                                                        client.now(), False, data))
    for freshness in (3600, -1):  # used as it is; old (his node is not asked about one that opens nothing)
        ciz.pdp.freshness = freshness
        with pytest.raises(PeerRefused) as info:
            await other.router.query(ciz.identity.did, "CLIENT-EIGEN-GEGEVENS", {"bsn": BSN0}, [signed])
        assert (info.value.code, info.value.rule) == ("denied", "CLIENT-OWN-DATA")
        assert info.value.reason.endswith(("it is not a well-formed Toestemming", "it is no machtiging"))
    assert not [e for e in await client.audit.entries(limit=1000) if e.event == "query RECORD-STATUS"]
    with pytest.raises(PeerRefused) as handed:
        await client.send_to_peer(other.url, Consent(consents=(signed,)))
    assert handed.value.code == "malformed"
    assert not await other.store.fetchall("SELECT 1 FROM evidence")


async def test_her_node_learns_from_his_that_he_withdrew_it_and_lets_it_go(network: Network) -> None:
    """Her node listed a machtiging he had withdrawn as hers to use, and kept it (it names his BSN) until its
    geldigTot: the sources were told, she was not. Her list now asks his node whether each stands."""
    ciz, zk, za, za_b, client, gemachtigde = await chain(network)
    machtiging = await machtig(client, gemachtigde)
    [listed] = await gemachtigde.client_view.represented()
    assert (listed["id"], listed["staat"]) == (machtiging, "geldig")
    await client.client_view.revoke(machtiging)
    [listed] = await gemachtigde.client_view.represented()
    assert (listed["id"], listed["staat"]) == (machtiging, "ingetrokken")  # shown once, then let go
    assert await gemachtigde.store.fetchall("SELECT 1 FROM evidence WHERE kind = 'Toestemming'") == []
    assert await gemachtigde.client_view.represented() == []
    with pytest.raises(NodeError):
        await gemachtigde.client_view.overview(namens=machtiging)

    second = await machtig(client, gemachtigde)  # his node away: she keeps it, not confirmed
    await client.stop()
    network.nodes.pop("client")
    [listed] = await gemachtigde.client_view.represented()
    assert (listed["id"], listed["staat"]) == (second, "niet bevestigd")
    assert len(await gemachtigde.store.fetchall("SELECT 1 FROM evidence WHERE kind = 'Toestemming'")) == 1


async def test_only_his_own_node_can_confirm_a_machtiging_not_whoever_answers_at_its_endpoint(network: Network) -> None:
    """Attack: the machtiging names where his node was; she (or anyone) answers there now. The question is sealed to
    his did and the answer must be signed by it: an answer from any other node confirms nothing."""
    ciz, zk, za, za_b, client, gemachtigde = await chain(network)
    data = {"toestemmingID": "5e4d3c2b-1a09-4f8e-9d7c-6b5a4f3e2d1c", "bsn": BSN0,
            "ontvanger": {"did": gemachtigde.identity.did}, "bronnen": ["*"],
            "templates": ["CLIENT-EIGEN-GEGEVENS", "CLIENT-ACCESS-LOG"], "doel": "vertegenwoordiging",
            "geldigTot": "2099-12-31", "bsnSleutel": client.home.bsn_key().hex(), "endpoint": gemachtigde.url}
    signed = client.registers.signer.sign(RecordVersion("Toestemming", data["toestemmingID"], 1, client.identity.did,
                                                        client.now(), False, data))
    ciz.pdp.freshness = -1
    with pytest.raises(PeerRefused) as info:
        await gemachtigde.router.query(ciz.identity.did, "CLIENT-EIGEN-GEGEVENS", {"bsn": BSN0}, [signed])
    assert (info.value.code, info.value.rule) == ("denied", "CLIENT-OWN-DATA")
    assert "its signer could not be asked whether it still stands" in info.value.reason
    ciz.pdp.freshness = 3600  # within the bound the same machtiging opens his data: only the confirmation failed
    assert len(await gemachtigde.router.query(ciz.identity.did, "CLIENT-EIGEN-GEGEVENS", {"bsn": BSN0}, [signed])) == 1


async def test_her_node_holds_a_machtiging_to_its_last_day_as_his_sources_do_whatever_its_time_zone(
        network: Network, monkeypatch) -> None:
    """A machtiging's geldigTot is a day: the sources end it by the UTC day (policy.pdp, day_of), and her node judged
    it by the day where it runs. On a machine set to Europe/Amsterdam, from midnight there until midnight UTC, her
    node held it for ended (no overview, and what it followed by it let go of) while every source still opened his
    data by it."""
    from datetime import datetime, time as clock_time, timedelta, timezone

    ciz, zk, za, za_b, client, gemachtigde = await chain(network)
    last = datetime.now(timezone.utc).date() + timedelta(days=2)
    machtiging = await machtig(client, gemachtigde, until=last.isoformat())
    late = datetime.combine(last, clock_time(23, 30), timezone.utc).timestamp()  # the next day in Amsterdam
    monkeypatch.setenv("TZ", "Europe/Amsterdam")
    time.tzset()
    try:
        for node in (ciz, zk, za, za_b, client, gemachtigde):
            node.clock = lambda: late
        view = await gemachtigde.client_view.overview(namens=machtiging)
        assert {a["organisation"] for a in view["asked"] if a["records"]} == {"CIZ", "Zorgkantoor Noord", "Zorggroep De Linde"}
        for node in (ciz, zk, za, za_b, client, gemachtigde):
            node.clock = lambda: late + 3600  # the next day in UTC too: it has ended everywhere
        with pytest.raises(NodeError):
            await gemachtigde.client_view.overview(namens=machtiging)
    finally:
        monkeypatch.undo()
        time.tzset()


async def test_his_machtiging_holds_for_her_past_the_end_of_the_certificate_he_signed_it_under(network: Network) -> None:
    """Attack on renewal: a signed record holds while the certificate in it does, and a client's certificate is
    short (an enrolment's: 30 days). He renewed his; the machtiging she held was still the one signed under the
    old certificate, so at its end her node held it for ended (no overview, his changes no longer followed) and
    every source refused it, until he gave her a new one by hand."""
    ciz, zk, za, za_b, client, gemachtigde = await chain(network)
    network.net.issue(client.home, now=int(time.time()), valid_for=2 * 3600)
    assert await client.reload_certificate()
    machtiging = await machtig(client, gemachtigde)
    network.net.issue(client.home, now=int(time.time()), valid_for=365 * 24 * 3600)  # renewed, the same key
    assert await client.reload_certificate()
    later = time.time() + 3 * 3600  # the certificate he signed it under has ended
    for _ in range(200):  # his node re-signs what it holds, and hands her the machtiging again, in the background
        held = await gemachtigde.client_view._machtigingen_held()
        if held and held[0][1].expires > later:
            break
        await asyncio.sleep(0.05)
    for node in (ciz, zk, za, za_b, client, gemachtigde):
        node.clock = lambda: later
    view = await gemachtigde.client_view.overview(namens=machtiging)
    assert {a["organisation"] for a in view["asked"] if a["records"]} == {"CIZ", "Zorgkantoor Noord", "Zorggroep De Linde"}
