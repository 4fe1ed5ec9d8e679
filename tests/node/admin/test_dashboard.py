"""The web dashboard, as a person sees it: headless Chromium renders it from a running node."""

from __future__ import annotations

import pytest

from tests.node.kit import CHROMIUM, rendered, Network, sample

pytestmark = pytest.mark.asyncio


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")
async def test_dashboard_shows_the_node_and_never_a_bsn(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    await ciz.registers.put("WlzIndicatie", sample("wlzIndicaties", 0), actor=ciz.actor, now=ciz.now())
    await network.settle()
    url = f"{ciz.admin_url}/dashboard#token={ciz.home.admin_token()}"
    page = await rendered(url, budget_ms=5000)
    assert "CIZ (ciz)" in page
    assert "Zorgkantoor Noord" in page  # the peer, and who received the notification
    assert "<b>1</b>notifications delivered" in page and "<b>1</b>records" in page
    assert ">intact<" in page
    assert "106658037" not in page and "Jansen" not in page


async def test_dashboard_data_needs_the_token(network: Network) -> None:
    import aiohttp

    (ciz,) = await network.start("ciz")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{ciz.admin_url}/dashboard") as r:
            assert r.status == 200 and "admin token" in await r.text()
        async with http.get(f"{ciz.admin_url}/admin/v1/node") as r:
            assert r.status == 401
