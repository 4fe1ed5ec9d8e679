"""The operator's web interface, used as a care administrator would: sign in, search, open, change, save, see the new
version; errors next to the field; messages newest first with paging and retry; meldingen; what an auditor sees."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from tests.node.kit import BSN0, CHROMIUM, IND0, Browser, Network, sample

pytestmark = [pytest.mark.asyncio, pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")]


async def user(node: Any, name: str, role: str) -> str:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {node.home.admin_token()}"}) as http:
        async with http.post(f"{node.admin_url}/admin/v1/users", json={"name": name, "role": role}) as r:
            return str((await r.json())["token"])


async def sign_in(page: Any, node: Any, token: str) -> None:
    await page.goto(f"{node.admin_url}/beheer")
    await page.fill("#code", token)
    await page.click("text=Aanmelden")
    await page.wait_for_selector("#menu button")


async def test_a_medewerker_searches_opens_changes_and_saves_a_record(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    await ciz.registers.put("WlzIndicatie", sample("wlzIndicaties", 0), actor=ciz.actor, now=ciz.now())
    token = await user(ciz, "Anna de Vries", "medewerker")
    async with Browser() as page:
        await sign_in(page, ciz, token)
        assert "Anna de Vries (medewerker)" in await page.inner_text("header")
        await page.fill("#zoekterm", BSN0)
        await page.click("#zoekform button")
        await page.click("#zoekuitkomst >> text=Open")
        await page.wait_for_selector("#gegeven:not([hidden])")
        assert IND0 in await page.inner_text("#gegeventitel")
        assert await page.input_value("input[name='besluitnummer']") == sample("wlzIndicaties", 0)["besluitnummer"]
        # Change a field and save: a new version, shown at once.
        await page.fill("input[name='besluitnummer']", "BESLUIT-2026-2")
        await page.click("#opslaan")
        await page.wait_for_selector("text=Opgeslagen: versie 2.")
        assert [row.split("\t")[0] for row in (await page.inner_text("#versies")).splitlines()[1:3]] == ["2", "1"]
        readers = await page.inner_text("#lezers")
        assert "Anna de Vries (medewerker)" in readers and "record.update" in readers
        # A value that breaks a rule: the error stands next to the field, nothing is stored.
        await page.fill("input[name='client.bsn']", "123456789")
        await page.click("#opslaan")
        await page.wait_for_selector("text=Niet opgeslagen")
        error = await page.inner_text("input[name='client.bsn'] + .fout")
        assert "client.bsn" in error and "123456789" not in error
    stored = await ciz.registers.current("WlzIndicatie", IND0)
    assert (stored.version, stored.data["besluitnummer"]) == (2, "BESLUIT-2026-2")
    [change] = [e for e in await ciz.audit.entries(subject=BSN0) if e.event == "record.update"]
    assert (change.actor_user, change.actor_role) == ("Anna de Vries", "medewerker")


async def test_a_new_record_from_the_form_with_a_missing_field_is_refused_at_that_field(network: Network) -> None:
    (zk,) = await network.start("zk5151")
    token = await user(zk, "Bram", "medewerker")
    async with Browser() as page:
        await sign_in(page, zk, token)
        await page.click("#menu >> text=Nieuw gegeven")
        await page.select_option("#nieuwsoort", "Bemiddeling")
        await page.click("#nieuwbegin")
        bemiddeling = sample("bemiddelingen", 0)
        await page.fill("input[name='bemiddelingID']", bemiddeling["bemiddelingID"])
        await page.fill("input[name='client.clientID']", bemiddeling["client"]["clientID"])
        await page.fill("input[name='client.bsn']", bemiddeling["client"]["bsn"])
        await page.fill("input[name='verantwoordelijkZorgkantoor']", "5151")
        await page.fill("input[name='verantwoordelijkheidIngangsdatum']", "2026-01-15")
        await page.click("#opslaan")
        await page.wait_for_selector("text=Niet opgeslagen")
        assert "wlzIndicatieID is required" in await page.inner_text("input[name='wlzIndicatieID'] + .fout")
        await page.fill("input[name='wlzIndicatieID']", bemiddeling["wlzIndicatieID"])
        await page.click("#opslaan")
        await page.wait_for_selector("text=Opgeslagen: versie 1.")
    assert (await zk.registers.current("Bemiddeling", bemiddeling["bemiddelingID"])) is not None


async def test_messages_are_newest_first_a_page_at_a_time_and_a_dead_letter_is_retried(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    now = int(time.time())
    await ciz.store.write([(
        "INSERT INTO outbox (notification_id, event_type, receiver_id_type, receiver_id, subjects, created_at, attempts, "
        "next_attempt_at, status, last_error) VALUES (?, 'NIEUWE_INDICATIE_ZORGKANTOOR', 'UZOVI', '9999', ?, ?, 9, 0, 'dead', "
        "'no peer with this identifier is known (yet)')",
        [(f"00000000-0000-4000-8000-{n:012d}", f'[{{"subject": "WlzIndicatie/{IND0}", "record_id": "WlzIndicatie/{IND0}"}}]',
          now - 1000 + n) for n in range(120)], True)])
    token = await user(ciz, "Chris", "beheerder")
    async with Browser() as page:
        await sign_in(page, ciz, token)
        await page.click("#menu >> text=Berichten")
        await page.select_option("#soortberichten", "dead")
        await page.wait_for_selector("#berichtenlijst >> text=Opnieuw proberen")
        rows = (await page.inner_text("#berichtenlijst")).splitlines()[1:]
        assert len(rows) == 50
        first = await page.locator("#berichtenlijst tr").nth(1).inner_text()
        assert "opgegeven" in first
        await page.click("#volgende")
        await page.wait_for_selector("text=pagina 2, nieuwste eerst")
        await page.click("#volgende")
        await page.wait_for_selector("text=pagina 3, nieuwste eerst")
        assert len((await page.inner_text("#berichtenlijst")).splitlines()[1:]) == 20
        await page.locator("#berichtenlijst >> text=Opnieuw proberen").first.click()
        await expect(page.locator("#berichtenlijst tr")).to_have_count(20)  # the heading and 19 left on this page
    dead = await ciz.outbox.list("dead", limit=1000)
    assert len(dead) == 119 and dead[0]["notification_id"] == "00000000-0000-4000-8000-000000000119"


async def test_meldingen_overdue_are_marked_and_answered_in_the_interface(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    await ciz.registers.put("WlzIndicatie", sample("wlzIndicaties", 0), actor=ciz.actor, now=ciz.now())
    await network.settle()
    melding_id = await zk.meldingen_sent.send(ciz.url, record=f"WlzIndicatie/{IND0}", rule="IRG0012",
                                              description="datum klopt niet", now=zk.now())
    await network.settle()
    real = ciz.clock
    ciz.clock = lambda: real() + 6 * 24 * 3600
    token = await user(ciz, "Dirk", "medewerker")
    async with Browser() as page:
        await sign_in(page, ciz, token)
        await page.click("#menu >> text=Controle")
        await page.wait_for_selector("#kaarten >> text=meldingen te laat")
        assert "1\nmeldingen te laat" in await page.inner_text("#kaarten")
        await page.click("#menu >> text=Meldingen")
        await page.wait_for_selector("#ontvangen >> text=(te laat)")
        ciz.clock = real  # the answer goes out at today's time
        await page.select_option("#ontvangen select", "afgehandeld")
        await page.fill("#ontvangen input", "datum hersteld")
        await page.click("#ontvangen >> text=Beantwoord")
        await page.wait_for_selector("#ontvangen >> text=afgehandeld: datum hersteld")
    ciz.clock = real
    await network.settle()
    [answer] = [m for m in await zk.meldingen_sent.list() if m["melding_id"] == melding_id]
    assert (answer["status"], answer["reden"]) == ("afgehandeld", "datum hersteld")


async def test_an_auditor_sees_the_log_but_not_the_records(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    await ciz.registers.put("WlzIndicatie", sample("wlzIndicaties", 0), actor=ciz.actor, now=ciz.now())
    token = await user(ciz, "Eva", "auditor")
    async with Browser() as page:
        await sign_in(page, ciz, token)
        menu = await page.inner_text("#menu")
        assert "Zoeken" not in menu and "Nieuw gegeven" not in menu and "Controle" in menu
        await page.wait_for_selector("#logboek >> text=record.create")
        assert "onveranderd" in await page.inner_text("#kaarten")
        assert BSN0 not in await page.content()
        await page.click("#menu >> text=Uitleg")
        assert "Het zorgkantoor dat verantwoordelijk is" in await page.inner_text("#woorden")


async def test_the_page_is_served_but_nothing_behind_it_without_a_code(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{ciz.admin_url}/beheer") as r:
            assert r.status == 200 and "Aanmelden" in await r.text()
        async with http.get(f"{ciz.admin_url}/dashboard", allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"] == "/beheer"
        async with http.get(f"{ciz.admin_url}/admin/v1/node") as r:
            assert r.status == 401
        async with http.get(f"{ciz.admin_url}/admin/v1/node", headers={"Authorization": "Bearer iwlz_wrong"}) as r:
            assert r.status == 401
        bearer = {"Authorization": f"Bearer {ciz.home.admin_token()}"}
        for path in ("/admin/v1/node", "/admin/v1/export/WlzIndicatie"):  # an answer, and a streamed one
            async with http.get(f"{ciz.admin_url}{path}", headers=bearer) as r:
                assert r.status == 200, path
                assert (r.headers["Cache-Control"], r.headers["X-Content-Type-Options"]) == ("no-store", "nosniff")


# A flaw that lets text become markup (in this page or a later change to it) must not become a script: the pages
# run only the one script they ship, and cannot be framed by another site.
INJECTED = """() => {
    document.body.insertAdjacentHTML('beforeend', '<img src="x" onerror="window.injected = 1">');
    const script = document.createElement('script');
    script.textContent = 'window.injected = 2';
    document.body.append(script);
    const style = document.createElement('style');
    style.textContent = 'body { display: none }';
    document.head.append(style);
}"""


@pytest.mark.parametrize("name, path", [("ciz", "/beheer"), ("client", "/mijn")])
async def test_a_script_the_page_did_not_ship_never_runs(network: Network, name: str, path: str) -> None:
    (node,) = await network.start(name)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{node.admin_url}{path}") as r:
            policy = r.headers["Content-Security-Policy"]
            assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Referrer-Policy"] == "no-referrer"
    directives = dict(d.strip().partition(" ")[::2] for d in policy.split(";"))
    assert "unsafe-inline" not in policy and directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'none'" and directives["connect-src"] == "'self'"
    async with Browser() as page:
        refused: list[str] = []
        page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None)
        if path == "/beheer":  # the page's own script and style work under the policy
            await sign_in(page, node, await user(node, "Anna de Vries", "medewerker"))
            await page.click("#menu >> text=Uitleg")
            assert "Het zorgkantoor dat verantwoordelijk is" in await page.inner_text("#woorden")
        else:
            await page.goto(f"{node.admin_url}/mijn#token={node.home.admin_token()}")
            await page.wait_for_selector("#content:not([hidden])")
            assert await page.evaluate("getComputedStyle(document.querySelector('section')).borderRadius") == "8px"
        assert refused == []  # nothing the page itself does is blocked
        visible = await page.evaluate("getComputedStyle(document.body).display")
        await page.evaluate(INJECTED)
        await page.wait_for_timeout(300)
        assert await page.evaluate("window.injected") is None
        assert await page.evaluate("getComputedStyle(document.body).display") == visible
        assert len(refused) >= 3  # the handler, the script and the style, each refused by the policy
