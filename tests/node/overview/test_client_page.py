"""The client's page, as he sees it: headless Chromium renders it from his own node."""

from __future__ import annotations

import pytest

from node.errors import PeerRefused
from tests.node.kit import CHROMIUM, rendered, BSN0, IND0, Network, put, sample

pytestmark = pytest.mark.asyncio


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")
async def test_his_page_shows_his_data_and_a_timeline_of_who_looked(network: Network) -> None:
    ciz, zk, za, za_b, client = await network.start("ciz", "zk5151", "za_a", "za_b", "client")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await put(zk, "Bemiddeling", sample("bemiddelingen", 0))
    await network.settle()
    with pytest.raises(PeerRefused):
        await za_b.query_peer(ciz.url, "QIR-0002-ZA", {"wlzIndicatieID": IND0, "agb": "87654321"}, [])
    melding_id = await client.meldingen_sent.send(ciz.url, record=f"WlzIndicatie/{IND0}", rule="IRG0012",
                                                  description="mijn geboortedatum klopt niet", now=client.now())
    await network.settle()
    await ciz.melding_desk.answer(melding_id, "afgehandeld", "geboortedatum hersteld")
    await network.settle()
    url = f"{client.admin_url}/mijn#token={client.home.admin_token()}"
    page = await rendered(url, budget_ms=8000)
    assert "Mijn Wlz-gegevens" in page and "Gevraagd bij:" in page
    assert "geldig van 01-10-2026" in page or "geldig van" in page
    assert "Zorgkantoor Noord, sinds" in page
    assert "Zorggroep De Linde, sinds 15-01-2026" in page
    assert "Thuiszorg Het Anker (zorgaanbieder) bij CIZ: geweigerd (regel UCIR-0002)" in page
    assert page.count('class="toegang"') >= 3  # dots on the timeline
    assert "WlzIndicatie bij kvk:62253778: afgehandeld — geboortedatum hersteld" in page
    assert BSN0 not in page
