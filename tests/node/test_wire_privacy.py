"""What anyone on the path between the nodes of a care chain sees: no BSN, name or birth date in the clear."""

from __future__ import annotations

from typing import Any

import pytest

from tests.node.kit import BSN0, IND0, SPEC0, Network, Tap, put, sample

pytestmark = pytest.mark.asyncio

LEVERING = {"leveringID": "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "bemiddelingspecificatieID": SPEC0, "bsn": BSN0,
            "wlzIndicatieID": IND0, "zorgkantoor": "5151", "zzpCode": "5VV", "leveringsvorm": "1",
            "leveringperiodes": [{"ingangsdatum": "2026-01-15"}], "verzoeken": []}


def personal_data(value: object, key: str = "") -> set[bytes]:
    """Every BSN, birth date, surname and contact person in ``value``, as the bytes they would be in the clear."""
    if isinstance(value, dict):
        return {found for k, v in value.items() for found in personal_data(v, k)}
    if isinstance(value, list):
        return {found for v in value for found in personal_data(v, key)}
    if key in ("bsn", "geboorteDatum", "geslachtsnaam", "contactPersoon") and value:
        return {str(value).encode()}
    return set()


async def test_nothing_between_the_nodes_of_a_care_chain_carries_personal_data_in_the_clear(network: Network) -> None:
    """Every node's announced URL is a relay that keeps every byte, so every message between them passes one:
    notifications and the fetches they cause, queries with evidence, gossip, witnesses, a client's overview,
    access log and subscription, and the notification of a change that reaches his node. What they carry of
    the people they are about is sealed to the receiver; a certificate names no client."""
    taps: dict[str, Tap] = {}
    for name in ("ciz", "zk5151", "za_a", "client"):
        tap = taps[name] = Tap()
        [node] = await network.start(name, public_url=await tap.start())
        tap.port = node.port
    ciz, zk, za, client = (network[n] for n in ("ciz", "zk5151", "za_a", "client"))
    try:
        indicaties = [sample("wlzIndicaties", i) for i in range(2)]
        await ciz.registers.load_many("WlzIndicatie", indicaties, actor=ciz.actor, now=ciz.now())
        await network.settle()
        bemiddeling = sample("bemiddelingen", 0)
        await put(zk, "Bemiddeling", bemiddeling)
        await network.settle()  # the provider fetched its specificatie back
        assert [r.record_id for r, _, _ in await zk.query_peer(ciz.url, "QIR-0001-ZKi",
                                                                {"wlzIndicatieID": IND0, "uzovi": "5151"}, [])] == [IND0]
        await put(za, "Levering", LEVERING)
        await network.settle()
        await client.client_view.follow(endpoint=client.url, allowed=client.subscriptions.matrix["allowed"])
        view = await client.client_view.overview()
        log = await client.client_view.access_log()
        changed: dict[str, Any] = {**indicaties[0], "einddatum": "2027-12-31"}
        await put(ciz, "WlzIndicatie", changed)
        await network.settle()
        await zk.gossiper.round()
        witnessed = await za.witnessing.hand_head()
    finally:
        for tap in taps.values():
            await tap.stop()
    assert {a["organisation"]: a["records"] for a in view["asked"]}["CIZ"] == 1 and log["entries"]
    assert witnessed >= 1
    fetched = await zk.store.fetchone("SELECT count(*) FROM inbox WHERE status = 'fetched'")
    assert fetched is not None and fetched[0] >= 2  # the zorgkantoor was told, and fetched what it was told of
    told = await client.store.fetchall("SELECT event_type FROM inbox")
    assert ("GEWIJZIGDE_INDICATIE_ZORGKANTOOR",) in told  # his node heard of the change at its own URL
    personal = personal_data(indicaties) | personal_data(bemiddeling) | personal_data(LEVERING)
    assert len(personal) >= 4
    for name, tap in taps.items():
        assert len(tap.seen) > (1_000 if name == "client" else 10_000), name  # each was reached through its relay
        assert [p for p in personal if p in tap.seen] == [], name
