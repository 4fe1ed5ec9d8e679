"""A zorgaanbieder with several AGB codes (vestigingen) runs one node: it is found, told, asked and answered under
any of them, and its evidence and care count for each; another provider does not become it."""

from __future__ import annotations

import time

import pytest

from node.home import NodeHome
from node.service import Node
from tests.node.kit import BSN0, IND0, LEVERING_ID, SPEC0, Network, levering, put, sample  # noqa: F401

pytestmark = pytest.mark.asyncio
MAIN, VESTIGING = "22334455", "22334466"


async def zorggroep(network: Network) -> Node:
    home = NodeHome.create(network.root / "zorggroep", role="zorgaanbieder", name="Zorggroep Meerdere Locaties",
                           identifiers={"agb": MAIN}, region="5151")
    config = home.config()
    config.vestigingen = [VESTIGING]
    home.save_config(config)
    network.net.issue(home, now=int(time.time()), days=30)
    node = Node(home, bootstrap=[n.url for n in network.nodes.values()], mdns=False, gossip_interval=0)
    await node.start()
    network.nodes["zorggroep"] = node
    for other in network.nodes.values():
        for peer in network.nodes.values():
            if other is not peer and other.peers.get(peer.identity.did) is None:
                await other.learn_from(peer.url, source="bootstrap")
    return node


async def test_a_toewijzing_to_a_vestiging_reaches_the_node_and_opens_what_it_should(network: Network) -> None:
    ciz, zk, cak = await network.start("ciz", "zk5151", "cak")
    group = await zorggroep(network)
    assert zk.peers.by_identifier("agb", VESTIGING).did == group.identity.did
    assert zk.peers.by_identifier("agb", MAIN).did == group.identity.did
    assert group.member.identifier_values("agb") == (MAIN, VESTIGING)
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    bemiddeling = sample("bemiddelingen", 0)
    bemiddeling["bemiddelingspecificatie"][0]["instelling"] = VESTIGING  # the toewijzing names the vestiging
    bemiddeling["regiehouder"][0]["instelling"] = VESTIGING
    await put(zk, "Bemiddeling", bemiddeling)
    await network.settle()
    # Told under the vestiging's code, fetched, and kept as evidence.
    [told] = [r for r in await group.inbox.list() if r["event_type"] == "NIEUWE_BEMIDDELINGSPECIFICATIE_ZORGAANBIEDER"]
    assert (told["status"], told["detail"]) == ("fetched", "QBR-0001-ZA: 1 record(s)")
    sent = [r for r in await zk.outbox.list() if r["event_type"] == "NIEUWE_BEMIDDELINGSPECIFICATIE_ZORGAANBIEDER"]
    assert [(r["receiver_id"], r["status"]) for r in sent] == [(VESTIGING, "delivered")]
    assert await group.store.fetchall("SELECT kind FROM evidence") == [("Bemiddelingspecificatie",)]
    # It reads the indicatie with that evidence, asking under either of its codes.
    evidence = await group.inbox.held.about(IND0)
    for agb in (VESTIGING, MAIN):
        [(indicatie, _, _)] = await group.query_peer(ciz.url, "QIR-0002-ZA", {"wlzIndicatieID": IND0, "agb": agb}, evidence)
        assert indicatie.data["bsn"] == BSN0
    # Its care rests on the vestiging's toewijzing, and the zorgkantoor and the CAK hear of it.
    await put(group, "Levering", levering())
    await network.settle()
    assert [r["status"] for r in await zk.inbox.list() if r["event_type"] == "NIEUWE_LEVERING_ZORGKANTOOR"] == ["fetched"]
    assert await group.registers.current("Levering", LEVERING_ID) is not None


async def test_another_provider_cannot_use_a_vestigings_code(network: Network) -> None:
    ciz, zk, za = await network.start("ciz", "zk5151", "za_a")
    await zorggroep(network)
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    bemiddeling = sample("bemiddelingen", 0)
    bemiddeling["bemiddelingspecificatie"][0]["instelling"] = VESTIGING
    await put(zk, "Bemiddeling", bemiddeling)
    await network.settle()
    from node.errors import PeerRefused

    with pytest.raises(PeerRefused) as info:  # za_a (AGB 12345678) naming the group's vestiging as its own
        await za.query_peer(zk.url, "QBR-0001-ZA", {"bemiddelingspecificatieID": SPEC0, "instelling": VESTIGING}, [])
    assert (info.value.code, info.value.rule) == ("denied", "QBR-0001-ZA")
    assert await za.query_peer(zk.url, "QBR-0001-ZA", {"bemiddelingspecificatieID": SPEC0, "instelling": "12345678"}, []) == []
