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


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")
async def test_his_daughter_sees_on_her_page_whom_she_acts_for_and_opens_his_data(network: Network) -> None:
    """A person's page as his gemachtigde uses it: whom she acts for, and his data and his access log in the same
    page; his page names the machtiging he gave. Before, neither page had any of it (the CLI only)."""
    from tests.node.kit import Browser
    from tests.node.overview.test_machtiging import chain, machtig

    ciz, zk, za, za_b, client, dochter = await chain(network)
    machtiging = await machtig(client, dochter)
    async with Browser() as page:
        await page.goto(f"{dochter.admin_url}/mijn#token={dochter.home.admin_token()}")
        await page.wait_for_selector("#namens >> text=Bekijk zijn gegevens")
        listed = await page.inner_text("#namens")
        assert f"Cliënt (knooppunt …{client.identity.did[-8:]})" in listed and "tot 31-12-2099: geldig" in listed
        await page.click("#namens >> text=Bekijk zijn gegevens")
        await page.wait_for_selector("#namenskop:not([hidden])")
        await page.wait_for_selector("#zorg >> text=Zorggroep De Linde")
        assert "geldig van" in await page.inner_text("#indicatie")
        assert "Zijn indicatie" in await page.inner_text("body") and "Mijn indicatie" not in await page.inner_text("body")
        assert "u (gemachtigde) bij CIZ: ingezien" in await page.inner_text("#toegang")
        assert await page.is_hidden("#toestemmingen") and await page.is_hidden("#meldingen")
        assert BSN0 not in await page.content()
        await page.click("#terug")
        await page.wait_for_selector("#namenskop", state="hidden")
        await page.wait_for_selector("text=Mijn indicatie")
        await page.wait_for_selector("#namens >> text=Bekijk zijn gegevens")

        await page.goto(f"{client.admin_url}/mijn#token={client.home.admin_token()}")
        await page.wait_for_selector("#toestemmingen >> text=Machtiging aan uw gemachtigde")
        assert f"(knooppunt …{dochter.identity.did[-8:]})" in await page.inner_text("#toestemmingen")
        assert "Niemand heeft u gemachtigd." in await page.inner_text("#namens")
        await client.client_view.revoke(machtiging)
        await page.goto(f"{dochter.admin_url}/mijn#token={dochter.home.admin_token()}")
        await page.wait_for_selector("#namens >> text=door hem ingetrokken")
        assert "Bekijk zijn gegevens" not in await page.inner_text("#namens")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")
async def test_on_her_page_she_follows_his_changes_and_sees_them_as_his(network: Network) -> None:
    """His data on her page had nothing of what changed in it. She now follows his changes with one button, and
    sees them under his data, not under hers."""
    from tests.node.kit import Browser
    from tests.node.overview.test_machtiging import chain, machtig

    ciz, zk, za, za_b, client, dochter = await chain(network)
    machtiging = await machtig(client, dochter)
    async with Browser() as page:
        await page.goto(f"{dochter.admin_url}/mijn#token={dochter.home.admin_token()}&namens={machtiging}")
        await page.wait_for_selector("#wijzigingen >> text=U volgt zijn wijzigingen nog niet.")
        assert "Wat veranderde er in zijn gegevens?" in await page.inner_text("body")
        await page.click("#volg")
        await page.wait_for_selector("#wijzigingen >> text=Zijn bronnen meldden nog geen wijziging.")
        assert await page.is_hidden("#volgen")
        assert len(await ciz.store.fetchall("SELECT 1 FROM subscriptions WHERE machtiging_id = ?", (machtiging,))) == 1
        changed = sample("wlzIndicaties", 0)
        changed["einddatum"] = "2027-06-30"
        await put(ciz, "WlzIndicatie", changed)
        await network.settle()
        await page.reload()
        await page.wait_for_selector("#wijzigingen >> text=CIZ — GEWIJZIGDE_INDICATIE_ZORGKANTOOR")
        assert BSN0 not in await page.content()
        # She stops following: every source ends her subscription; what she was told stays his.
        await page.click("#ontvolg")
        await page.wait_for_selector("#volg", state="visible")
        assert await page.is_hidden("#ontvolgen")
        assert await ciz.store.fetchall("SELECT 1 FROM subscriptions") == []
        assert "CIZ — GEWIJZIGDE_INDICATIE_ZORGKANTOOR" in await page.inner_text("#wijzigingen")
        await page.click("#terug")
        await page.wait_for_selector("#wijzigingen >> text=Niets nieuws sinds uw vorige bezoek.")
        assert "Wat is er veranderd sinds ik vorige keer keek?" in await page.inner_text("body")
