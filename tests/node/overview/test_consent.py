"""Consent as evidence, with real nodes: a party outside the matrix reads what the client allowed, where he
allowed it, for the purpose and the time he allowed it, until he withdraws it — also at a source that was down
when he did."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from node.errors import PeerRefused
from node.service import Node
from tests.node.kit import BSN0, IND0, Network, put, sample

pytestmark = pytest.mark.asyncio
TEMPLATE, PURPOSE = "GEGEVENS-MET-TOESTEMMING", "second opinion"


async def parties(network: Network) -> tuple[Node, ...]:
    ciz, zk, za_b, client, client2 = await network.start("ciz", "zk5151", "za_b", "client", "client2")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await put(zk, "Bemiddeling", sample("bemiddelingen", 0))
    await network.settle()
    return ciz, zk, za_b, client, client2


async def read(za_b: Node, source: Node, *, purpose: str = PURPOSE, template: str = TEMPLATE, bsn: str = BSN0) -> Any:
    held = [bytes(s) for s, in await za_b.store.fetchall("SELECT signed FROM evidence WHERE kind = 'Toestemming'")]
    return await za_b.query_peer(source.url, template, {"bsn": bsn, "doel": purpose}, held)


async def denied(coro: Any) -> str:
    with pytest.raises(PeerRefused) as info:
        await coro
    assert (info.value.code, info.value.rule) == ("denied", "TOESTEMMING")
    return info.value.reason


async def grant(client: Node, *, until: str = "2099-12-31", sources: tuple[str, ...] = ("kvk:62253778", "uzovi:5151"),
                templates: tuple[str, ...] = (TEMPLATE,)) -> str:
    result = await client.client_view.grant(to="agb:87654321", templates=list(templates), purpose=PURPOSE, until=until,
                                            sources=list(sources))
    assert result["handed_over"], result
    return str(result["id"])


async def test_a_party_outside_the_matrix_reads_only_with_his_consent_and_only_within_it(network: Network) -> None:
    ciz, zk, za_b, client, client2 = await parties(network)
    assert "no consent" in await denied(read(za_b, ciz))  # nothing presented
    await grant(client, sources=("kvk:62253778",))  # at CIZ only
    [(record, _, _)] = await read(za_b, ciz)
    assert record.record_id == IND0
    entry = (await ciz.audit.entries(limit=10_000, newest_first=True))[0]
    assert (entry.result, entry.rule, entry.actor_org, entry.subject) == ("allowed", "TOESTEMMING", "Thuiszorg Het Anker", BSN0)
    assert "does not name this source" in await denied(read(za_b, zk))  # another source
    assert "another purpose" in await denied(read(za_b, ciz, purpose="marketing"))
    assert "not signed by the client" in await denied(read(za_b, ciz, bsn="737459086"))  # another client's data


async def test_a_consent_that_ended_covers_another_template_or_was_signed_by_someone_else_opens_nothing(
        network: Network) -> None:
    ciz, zk, za_b, client, client2 = await parties(network)
    await grant(client, until="2020-01-01")
    assert "it has ended" in await denied(read(za_b, ciz))
    await za_b.store.write([("DELETE FROM evidence", (), False)])
    await grant(client, templates=("CLIENT-EIGEN-GEGEVENS",))
    assert f"does not cover {TEMPLATE}" in await denied(read(za_b, ciz))
    await za_b.store.write([("DELETE FROM evidence", (), False)])
    # Visser signs a consent that names Jansen's BSN: his node refuses to sign another's BSN, so he forges it.
    from protocol.records import RecordVersion

    forged = {"toestemmingID": "0f0e5d3c-1b2a-4c9d-8e7f-6a5b4c3d2e1f", "bsn": BSN0, "ontvanger": {"agb": "87654321"},
              "bronnen": ["kvk:62253778"], "templates": [TEMPLATE], "doel": PURPOSE, "geldigTot": "2099-12-31"}
    signed = client2.registers.signer.sign(RecordVersion("Toestemming", forged["toestemmingID"], 1, client2.identity.did,
                                                         client2.now(), False, forged))
    with pytest.raises(PeerRefused) as info:
        await za_b.query_peer(ciz.url, TEMPLATE, {"bsn": BSN0, "doel": PURPOSE}, [signed])
    assert info.value.rule == "TOESTEMMING" and "not signed by the client" in info.value.reason


async def test_a_withdrawn_consent_is_refused_at_every_source_also_one_that_was_down(network: Network) -> None:
    ciz, zk, za_b, client, client2 = await parties(network)
    consent = await grant(client)
    assert len(await read(za_b, ciz)) == 1 and len(await read(za_b, zk)) == 1
    zk_port = int(zk.url.rsplit(":", 1)[1])
    await zk.stop()
    network.nodes.pop("zk5151")
    client.outbox.first_delay, client.outbox.max_delay = 0.05, 0.2
    await client.client_view.revoke(consent)
    deadline = time.monotonic() + 5
    while not await ciz.store.fetchall("SELECT 1 FROM revoked_consents") and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert "withdrawn" in await denied(read(za_b, ciz))  # at once
    restarted = Node(zk.home, port=zk_port, mdns=False, gossip_interval=0)
    await restarted.start()
    network.nodes["zk5151"] = restarted
    deadline = time.monotonic() + 10
    while not await restarted.store.fetchall("SELECT 1 FROM revoked_consents") and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert "withdrawn" in await denied(read(za_b, restarted))  # once it was back, it heard too
    rows = {r["receiver_id"]: r["status"] for r in await client.outbox.list()}
    assert rows == {"62253778": "delivered", "5151": "delivered"}
    [listed] = await client.client_view.consents()
    assert listed["ingetrokken"] is True
    # Each source's audit shows the withdrawal and the refusals.
    events = [(e.event, e.result) for e in await ciz.audit.entries(limit=10_000)]
    assert ("notification.received VERWIJDERDE_TOESTEMMING_BRON", "stored") in events
    assert ("query GEGEVENS-MET-TOESTEMMING", "denied") in events
