"""The whole care chain with real nodes: care starts and stops at the provider on its toewijzing, the zorgkantoor
and the CAK hear of it and fetch it, the CAK's eigen bijdrage follows, and providers ask each other for help."""

from __future__ import annotations

from typing import Any

import pytest

from node.errors import ValidationError
from node.service import Node
from tests.node.kit import BSN0, IND0, LEVERING_ID, Network, levering, put, sample

pytestmark = pytest.mark.asyncio


async def assigned(network: Network, *extra: str) -> list[Node]:
    """CIZ, zorgkantoor 5151, the CAK and provider 12345678, which holds the specificatie that assigns it."""
    nodes = await network.start("ciz", "zk5151", "cak", "za_a", *extra)
    ciz, zk, cak, za = nodes[:4]
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await put(zk, "Bemiddeling", sample("bemiddelingen", 0))
    await network.settle()
    assert await za.store.fetchall("SELECT kind FROM evidence") == [("Bemiddelingspecificatie",)]
    return nodes


async def inbox(node: Node, event: str) -> list[dict[str, Any]]:
    return [r for r in await node.inbox.list() if r["event_type"] == event]


async def test_care_starts_and_ends_and_the_zorgkantoor_and_the_cak_follow(network: Network) -> None:
    ciz, zk, cak, za, client = await assigned(network, "client")
    await put(za, "Levering", levering())  # care starts
    await network.settle()
    [row] = await inbox(zk, "NIEUWE_LEVERING_ZORGKANTOOR")
    assert (row["status"], row["detail"]) == ("fetched", "QLR-0002-ZK: 1 record(s)")
    [row] = await inbox(cak, "NIEUWE_LEVERING_CAK")
    assert (row["status"], row["detail"]) == ("fetched", "QLR-0003-CAK: 1 record(s)")
    [bijdrage] = await cak.registers.list_current("EigenBijdrage")
    assert (bijdrage.data["status"], bijdrage.data["bedragPerMaand"], bijdrage.data["periode"]) == (
        "lopend", 876, {"ingangsdatum": "2026-10-01"})
    # What each may see of it: the zorgkantoor that one exists, not the amount; the client all of it.
    [(seen, _, _)] = await zk.query_peer(cak.url, "QEB-0001-ZK", {"wlzIndicatieID": IND0, "uzovi": "5151"}, [])
    assert "bedragPerMaand" not in seen.data and seen.data["status"] == "lopend"
    [(own, _, _)] = await client.query_peer(cak.url, "CLIENT-EIGEN-GEGEVENS", {"bsn": BSN0}, [])
    assert own.kind == "EigenBijdrage" and own.data["bedragPerMaand"] == 876
    view = await client.client_view.overview()
    assert [e["bedragPerMaand"] for e in view["eigen_bijdrage"]] == [876]
    assert [z["status"] for z in view["zorg"]] == ["zorg loopt"]
    # Care ends: the period closes everywhere.
    await put(za, "Levering", levering(leveringperiodes=[{"ingangsdatum": "2026-10-01", "einddatum": "2026-12-31",
                                                          "reden": "verhuizing"}]))
    await network.settle()
    assert [r["status"] for r in await inbox(zk, "BEEINDIGDE_LEVERING_ZORGKANTOOR")] == ["fetched"]
    assert [r["status"] for r in await inbox(cak, "BEEINDIGDE_LEVERING_CAK")] == ["fetched"]
    [bijdrage] = await cak.registers.list_current("EigenBijdrage")
    assert (bijdrage.version, bijdrage.data["status"], bijdrage.data["periode"]["einddatum"]) == (2, "beeindigd", "2026-12-31")
    sent = {(r["event_type"], r["receiver_id"], r["status"]) for r in await za.outbox.list()}
    assert sent == {("NIEUWE_LEVERING_ZORGKANTOOR", "5151", "delivered"), ("NIEUWE_LEVERING_CAK", "27364237", "delivered"),
                    ("BEEINDIGDE_LEVERING_ZORGKANTOOR", "5151", "delivered"), ("BEEINDIGDE_LEVERING_CAK", "27364237", "delivered")}
    audit = [(e.event, e.actor_org) for e in await za.audit.entries(limit=1000)]
    assert ("query QLR-0003-CAK", "CAK") in audit and ("query QLR-0002-ZK", "Zorgkantoor Noord") in audit


@pytest.mark.parametrize("changes,why", [
    ({"bemiddelingspecificatieID": "0f0e5d3c-1b2a-4c9d-8e7f-6a5b4c3d2e1f"}, "holds no Bemiddelingspecificatie"),
    ({"bsn": "737459086"}, "bsn is not the client"),
    ({"zorgkantoor": "5050"}, "zorgkantoor is not a zorgkantoor of the bemiddeling"),
    ({"leveringperiodes": [{"ingangsdatum": "2025-01-01"}]}, "outside the toewijzing"),
])
async def test_care_without_a_valid_toewijzing_is_refused_with_the_rule_named(network: Network, changes: dict[str, Any],
                                                                              why: str) -> None:
    ciz, zk, cak, za = await assigned(network)
    with pytest.raises(ValidationError, match=f"LEVERING-TOEWIJZING: .*{why}"):
        await put(za, "Levering", levering(**changes))
    assert await za.registers.list_current("Levering") == [] and await za.outbox.list() == []


async def test_a_provider_without_any_toewijzing_cannot_record_care(network: Network) -> None:
    ciz, zk, cak, za, za_b = await assigned(network, "za_b")
    other = levering(leveringID="0f0e5d3c-1b2a-4c9d-8e7f-6a5b4c3d2e1f")
    with pytest.raises(ValidationError, match="LEVERING-TOEWIJZING"):
        await put(za_b, "Levering", other)


async def test_a_provider_asks_another_for_part_of_the_care_and_gets_an_answer(network: Network) -> None:
    ciz, zk, cak, za, za_b = await assigned(network, "za_b")
    verzoek = {"verzoekID": "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e", "aanbieder": "87654321", "soort": "dagbesteding",
               "datum": "2026-10-15"}
    await put(za, "Levering", levering(verzoeken=[verzoek]))
    await network.settle()
    [row] = await inbox(za_b, "NIEUW_VERZOEKAANBIEDER_AANBIEDER")
    assert (row["status"], row["detail"]) == ("fetched", "QLR-0004-ZA: 1 record(s)")
    [(asked, _, _)] = await za_b.query_peer(za.url, "QLR-0004-ZA", {"leveringID": LEVERING_ID, "agb": "87654321"}, [])
    assert asked.data["verzoeken"] == [verzoek] and "leveringperiodes" not in asked.data
    answer = {"antwoordID": "3c4d5e6f-7a8b-4c9d-8e1f-2a3b4c5d6e7f", "verzoekID": verzoek["verzoekID"],
              "leveringID": LEVERING_ID, "aanvrager": "12345678", "bsn": BSN0, "status": "geaccepteerd",
              "datum": "2026-10-16"}
    await put(za_b, "VerzoekAntwoord", answer)
    await network.settle()
    [row] = await inbox(za, "NIEUW_VERZOEKANTWOORD_AANBIEDER")
    assert (row["status"], row["detail"]) == ("fetched", "QLR-0005-ZA: 1 record(s)")
    [(fetched, _, _)] = await za.query_peer(za_b.url, "QLR-0005-ZA", {"antwoordID": answer["antwoordID"], "agb": "12345678"}, [])
    assert fetched.data["status"] == "geaccepteerd"
    # The zorgkantoor sees the care, not the verzoeken between providers.
    [(care, _, _)] = await zk.query_peer(za.url, "QLR-0002-ZK", {"leveringID": LEVERING_ID, "uzovi": "5151"}, [])
    assert "verzoeken" not in care.data


async def test_care_recorded_before_the_provider_heard_of_the_cak_reaches_the_cak_once_it_appears(network: Network) -> None:
    """The CAK's notifications went to the CAKs in the provider's peer table when care was recorded: a provider that
    had not heard of one yet (just started, the CAK away) never told the CAK, and its eigen bijdrage never came."""
    ciz, zk, za = await network.start("ciz", "zk5151", "za_a")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await put(zk, "Bemiddeling", sample("bemiddelingen", 0))
    await network.settle()
    await put(za, "Levering", levering())  # care starts; no CAK is known
    await network.settle()
    waiting = [(r["event_type"], r["status"]) for r in await za.outbox.list() if r["event_type"].endswith("_CAK")]
    assert waiting == [("NIEUWE_LEVERING_CAK", "pending")]
    # Only a member whose certificate says CAK takes it: what a zorgkantoor's announcement does leaves it waiting.
    peer = za.peers.get(zk.identity.did)
    assert peer is not None and peer.role == "zorgkantoor"
    await za.outbox.peer_back(zk.identity.did, peer.identifier_values())
    await za.outbox.wake_known()
    await network.settle()
    waiting = [(r["receiver_id"], r["status"]) for r in await za.outbox.list() if r["event_type"].endswith("_CAK")]
    assert waiting == [("*", "pending")]
    (cak,) = await network.start("cak")
    await network.settle()
    [row] = await inbox(cak, "NIEUWE_LEVERING_CAK")
    assert (row["status"], row["detail"]) == ("fetched", "QLR-0003-CAK: 1 record(s)")
    [bijdrage] = await cak.registers.list_current("EigenBijdrage")
    assert bijdrage.data["status"] == "lopend"
    sent = {(r["event_type"], r["receiver_id"], r["status"]) for r in await za.outbox.list()}
    assert ("NIEUWE_LEVERING_CAK", "27364237", "delivered") in sent
    # Care recorded now goes to the CAK the provider knows, as before.
    await put(za, "Levering", levering(leveringperiodes=[{"ingangsdatum": "2026-10-01", "einddatum": "2026-12-31",
                                                          "reden": "verhuizing"}]))
    await network.settle()
    assert [r["status"] for r in await inbox(cak, "BEEINDIGDE_LEVERING_CAK")] == ["fetched"]


async def _no_check(data: Any) -> None:
    return None


@pytest.mark.parametrize("forged", [
    {"leveringperiodes": [{"ingangsdatum": ["2026-10-01"]}]},  # not a date
    {"leveringsvorm": ["zzp"]},                                # not a code
    {"bsn": "1" * 100_000},                                    # no BSN
])
async def test_a_levering_that_is_none_changes_nothing_at_the_cak_and_is_not_acted_on_again(
        network: Network, monkeypatch: pytest.MonkeyPatch, forged: dict[str, Any]) -> None:
    """A provider signs what it likes: the CAK counts an eigen bijdrage only from a Levering as its schema has it."""
    ciz, zk, cak, za = await assigned(network)
    with monkeypatch.context() as unchecked:  # the provider's own checks, which a hostile provider does not run
        unchecked.setattr("node.store.registers.checked_record", lambda kind, data: data)
        unchecked.setitem(za.registers.checks, "Levering", _no_check)
        await put(za, "Levering", levering(**forged))
    await network.settle()
    [row] = await inbox(cak, "NIEUWE_LEVERING_CAK")
    assert row["status"] == "refused" and "cannot be kept here" in row["detail"], row
    assert await cak.registers.list_current("EigenBijdrage") == []
    for hours in range(1, 4):
        assert await cak.inbox.retry_failed(now=cak.now() + 3600 * hours) == 0


@pytest.mark.parametrize("forged", [
    {"toewijzingIngangsdatum": 20261001},          # a number, where a date is compared
    {"toewijzingEinddatum": ["2027-12-31"]},       # a list
    {"toewijzingIngangsdatum": "1 oktober"},        # no date
])
async def test_care_on_a_toewijzing_that_is_none_is_refused_with_the_rule_named(
        network: Network, monkeypatch: pytest.MonkeyPatch, forged: dict[str, Any]) -> None:
    """A zorgkantoor signs what it likes: the provider's check reads the toewijzing it holds only as the schema has
    it (before, a number where a date belongs made recording care fail with a TypeError: "bad request: TypeError" at
    the admin API, which said nothing of why)."""
    nodes = await network.start("ciz", "zk5151", "cak", "za_a")
    ciz, zk, cak, za = nodes
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    bemiddeling = sample("bemiddelingen", 0)
    bemiddeling["bemiddelingspecificatie"][0].update(forged)
    with monkeypatch.context() as unchecked:  # the zorgkantoor's own check, which a hostile one does not run
        unchecked.setattr("node.store.registers.checked_record", lambda kind, data: data)
        await put(zk, "Bemiddeling", bemiddeling)
    await network.settle()
    assert await za.store.fetchall("SELECT kind FROM evidence") == [("Bemiddelingspecificatie",)]
    with pytest.raises(ValidationError, match="LEVERING-TOEWIJZING: the Bemiddelingspecificatie held for it is none: "):
        await put(za, "Levering", levering())
    assert await za.registers.list_current("Levering") == [] and await za.outbox.list() == []
