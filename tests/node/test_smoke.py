import pytest

from node.errors import PeerRefused
from tests.node.kit import Network, sample

IND = "31835d1d-3933-4ffe-9f57-8985f41fae4a"


@pytest.mark.asyncio
async def test_smoke(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    await ciz.registers.put("WlzIndicatie", sample("wlzIndicaties", 0), actor=ciz.actor, now=ciz.now())
    out = await zk.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND, "uzovi": "5151"}, [])
    assert out[0][0].data["bsn"] == "106658037"
    with pytest.raises(PeerRefused) as info:
        await zk.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND, "uzovi": "5050"}, [])
    assert info.value.code == "denied"
    print(await ciz.audit.verify())
