"""Meldingen with a life cycle, with real nodes: a reporter's melding goes through its outbox, the source checks
the record and the relation, keeps it with a deadline of one working day, answers it, and the answer comes back."""

from __future__ import annotations

import asyncio
import time
from datetime import date
from typing import Any

import aiohttp
import pytest

from node.care.calendar import WorkingDays
from node.errors import ValidationError
from node.service import Node
from protocol import Melding
from tests.node.kit import BSN0, IND0, Network, put, sample

pytestmark = pytest.mark.asyncio
MISSING = "0f0e5d3c-1b2a-4c9d-8e7f-6a5b4c3d2e1f"


async def indicatie(network: Network, *parties: str) -> list[Node]:
    nodes = await network.start("ciz", *parties)
    await put(nodes[0], "WlzIndicatie", sample("wlzIndicaties", 0))  # zorgkantoor 5151, client BSN0
    await network.settle()
    return nodes


async def send(reporter: Node, source: Node, record: str = f"WlzIndicatie/{IND0}") -> str:
    return await reporter.meldingen_sent.send(source.url, record=record, rule="IRG0012",
                                              description="ingangsdatum ligt na einddatum", now=reporter.now())


async def sent(reporter: Node, melding_id: str) -> dict[str, Any]:
    [row] = [m for m in await reporter.meldingen_sent.list() if m["melding_id"] == melding_id]
    return row


async def test_a_melding_is_kept_with_a_deadline_answered_and_the_answer_reaches_the_reporter(network: Network) -> None:
    ciz, zk = await indicatie(network, "zk5151")
    melding_id = await send(zk, ciz)
    assert (await sent(zk, melding_id))["status"] == "verzonden"  # queued before anything went out
    await network.settle()
    [out] = [r for r in await zk.outbox.list() if r["event_type"] == "IWLZFOUTMELDING"]
    assert (out["notification_id"], out["status"]) == (melding_id, "delivered")
    [kept] = await ciz.melding_desk.list()
    today = date.fromtimestamp(ciz.now())
    assert kept["meldingID"] == melding_id and kept["status"] == "ontvangen" and not kept["overdue"]
    assert (kept["record"], kept["regel"], kept["melder"], kept["melderRol"]) == (
        f"WlzIndicatie/{IND0}", "IRG0012", zk.identity.did, "zorgkantoor")
    assert kept["antwoordAan"] == {"idType": "UZOVI", "id": "5151"}
    assert kept["termijn"] == WorkingDays().next_working_day(today).isoformat()
    # The client whose indicatie it is sees in his access log that an error was reported in it.
    made = [e for e in await ciz.audit.entries(subject=BSN0) if e.record == f"Melding/{melding_id}"]
    assert [(e.event, e.actor_org) for e in made] == [("record.create", "Zorgkantoor Noord")]
    assert (await sent(zk, melding_id))["status"] == "ontvangen"

    await ciz.melding_desk.answer(melding_id, "in_behandeling", None)
    await network.settle()
    assert (await sent(zk, melding_id))["status"] == "in_behandeling"
    await ciz.melding_desk.answer(melding_id, "afgehandeld", "einddatum hersteld in versie 2")
    await network.settle()
    answer = await sent(zk, melding_id)
    assert (answer["status"], answer["reden"]) == ("afgehandeld", "einddatum hersteld in versie 2")
    notes = [r for r in await zk.inbox.list() if r["event_type"] == "GEWIJZIGDE_MELDING_MELDER"]
    assert [(r["status"], r["detail"]) for r in notes] == [("fetched", "MELDING-STATUS: 1 record(s)")] * 2
    [closed] = await ciz.melding_desk.list()
    assert (closed["status"], closed["afgehandeldOp"], closed["version"]) == ("afgehandeld", today.isoformat(), 3)
    assert await ciz.melding_desk.list(state="open") == []
    with pytest.raises(ValidationError, match="cannot become"):
        await ciz.melding_desk.answer(melding_id, "afgewezen", "te laat")


async def test_a_melding_is_sent_again_until_acknowledged_and_counted_once(network: Network) -> None:
    ciz, zk = await indicatie(network, "zk5151")
    melding_id = await send(zk, ciz)
    await network.settle()
    [row] = [r for r in await zk.outbox.list() if r["event_type"] == "IWLZFOUTMELDING"]
    again = zk.outbox._message(row)  # the same melding once more, as a retry after a lost acknowledgement would be
    reply = await zk.client.request(ciz.url, again, to=ciz.identity.did)
    assert (reply.message.ref, reply.message.status) == (melding_id, "duplicate")
    assert len(await ciz.melding_desk.list()) == 1
    # Another party cannot take that id over (and so silence the first reporter's melding).
    zk5050, = await network.start("zk5050")
    taken = Melding(melding_id=melding_id, event_type="IWLZFOUTMELDING", rule="IRG0001", record=f"WlzIndicatie/{IND0}",
                    description="")
    from node.errors import PeerRefused
    with pytest.raises(PeerRefused) as info:
        await zk5050.client.request(ciz.url, taken, to=ciz.identity.did)
    assert (info.value.code, info.value.rule) == ("malformed", "MELDING-ID")


@pytest.mark.parametrize("reporter,record,rule", [
    ("zk5151", f"WlzIndicatie/{MISSING}", "MELDING-RECORD"),   # no such record here
    ("zk5151", f"Bemiddeling/{MISSING}", "MELDING-RECORD"),    # a register the CIZ does not hold
    ("zk5050", f"WlzIndicatie/{IND0}", "MELDING-MELDER"),      # another zorgkantoor's client
    ("za_a", f"WlzIndicatie/{IND0}", "MELDING-MELDER"),        # a provider: the indicatie was never sent to it
    ("client2", f"WlzIndicatie/{IND0}", "MELDING-MELDER"),     # another client
])
async def test_a_melding_without_a_record_or_a_relation_is_refused_and_not_retried(
        network: Network, reporter: str, record: str, rule: str) -> None:
    ciz, sender = await indicatie(network, reporter)
    melding_id = await send(sender, ciz, record)
    await network.settle()
    row = await sent(sender, melding_id)
    assert (row["status"], row["delivery"], row["attempts"]) == ("geweigerd", "refused", 1)
    assert f"rule {rule}" in row["last_error"]
    assert await ciz.melding_desk.list() == []
    assert await ciz.registers.list_current("Melding") == []
    if rule == "MELDING-MELDER":  # the client sees the refused attempt in his access log
        denied = [e for e in await ciz.audit.entries(subject=BSN0) if e.result == "denied"]
        assert [(e.event, e.rule, e.actor_org) for e in denied] == [("melding", rule, sender.member.organisation)]
    refused = [e for e in await sender.audit.entries() if e.event == "notification.refused IWLZFOUTMELDING"]
    assert [(e.result, e.rule) for e in refused] == [("denied" if rule == "MELDING-MELDER" else "not-found", rule)]


async def test_the_client_asks_for_a_correction_and_hears_the_answer_at_his_own_node(network: Network) -> None:
    ciz, client = await indicatie(network, "client")
    melding_id = await send(client, ciz)
    await network.settle()
    [kept] = await ciz.melding_desk.list()
    assert kept["antwoordAan"] == {"idType": "DID", "id": client.identity.did, "endpoint": client.url}
    assert kept["melderRol"] == "client" and "bsn" not in kept  # a listing names records, not clients
    await ciz.melding_desk.answer(melding_id, "afgewezen", "de einddatum klopt: zie het besluit")
    await network.settle()
    answer = await sent(client, melding_id)
    assert (answer["status"], answer["reden"]) == ("afgewezen", "de einddatum klopt: zie het besluit")


async def test_a_melding_sent_while_the_source_is_down_arrives_when_it_is_back(network: Network) -> None:
    ciz, zk = await indicatie(network, "zk5151")
    zk.outbox.first_delay, zk.outbox.max_delay = 0.05, 0.2
    ciz_port = int(ciz.url.rsplit(":", 1)[1])
    await ciz.stop()
    network.nodes.pop("ciz")
    melding_id = await send(zk, ciz)
    await asyncio.sleep(0.6)
    row = await sent(zk, melding_id)
    assert (row["status"], row["delivery"]) == ("verzonden", "pending") and row["attempts"] >= 2
    restarted = Node(ciz.home, port=ciz_port, mdns=False, gossip_interval=0)
    await restarted.start()
    network.nodes["ciz"] = restarted
    deadline = time.monotonic() + 10
    while (await sent(zk, melding_id))["delivery"] != "delivered" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert (await sent(zk, melding_id))["status"] == "ontvangen"
    assert [m["meldingID"] for m in await restarted.melding_desk.list()] == [melding_id]


async def test_an_overdue_melding_shows_as_overdue_in_the_list_and_the_metrics(network: Network) -> None:
    ciz, zk = await indicatie(network, "zk5151")
    melding_id = await send(zk, ciz)
    await network.settle()
    assert await ciz.melding_desk.list(state="overdue") == []
    real = ciz.clock
    ciz.clock = lambda: real() + 6 * 24 * 3600  # six days on: past any deadline of one working day
    [late] = await ciz.melding_desk.list(state="overdue")
    assert late["meldingID"] == melding_id and late["overdue"]
    headers = {"Authorization": f"Bearer {ciz.home.admin_token()}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{ciz.url}/metrics") as r:
            assert "iwlz_meldingen_overdue 1.0" in await r.text()
        async with http.get(f"{ciz.admin_url}/admin/v1/meldingen?state=overdue", headers=headers) as r:
            assert [m["meldingID"] for m in (await r.json())["meldingen"]] == [melding_id]
        async with http.post(f"{ciz.admin_url}/admin/v1/meldingen/{melding_id}/answer", headers=headers,
                             json={"status": "afgehandeld"}) as r:
            assert r.status == 400 and "needs a reason" in (await r.json())["reason"]
    await ciz.melding_desk.answer(melding_id, "afgehandeld", "hersteld")
    assert await ciz.melding_desk.list(state="overdue") == []


async def test_the_deadline_is_the_next_working_day() -> None:
    dutch = WorkingDays()
    assert dutch.next_working_day(date(2026, 11, 26)) == date(2026, 11, 27)  # Thursday: Friday
    assert dutch.next_working_day(date(2026, 11, 27)) == date(2026, 11, 30)  # Friday: Monday
    assert dutch.next_working_day(date(2026, 11, 28)) == date(2026, 11, 30)  # Saturday: Monday
    assert dutch.next_working_day(date(2026, 4, 24)) == date(2026, 4, 28)  # Friday before Koningsdag: Tuesday
    assert dutch.next_working_day(date(2026, 12, 24)) == date(2026, 12, 28)  # Christmas and a weekend
    assert dutch.next_working_day(date(2027, 5, 5)) == date(2027, 5, 7)  # Hemelvaartsdag
    configured = WorkingDays(["2026-11-30"])  # an organisation's own list replaces the Dutch one
    assert configured.next_working_day(date(2026, 11, 27)) == date(2026, 12, 1)
    assert configured.next_working_day(date(2026, 4, 24)) == date(2026, 4, 27)


async def test_meldingen_kept_before_the_life_cycle_become_records_at_start(network: Network) -> None:
    ciz, zk = await indicatie(network, "zk5151")
    old_id = "7c2d9e4f-3a5b-4c6d-8e7f-9a0b1c2d3e4f"
    await ciz.store.write([("INSERT INTO meldingen (melding_id, received_at, sender_did, sender_org, rule, record, "
                            "description, status) VALUES (?, ?, ?, 'Zorgkantoor Noord', 'IRG0012', ?, '', 'open')",
                            (old_id, ciz.now(), zk.identity.did, f"WlzIndicatie/{IND0}"), False)])
    port = int(ciz.url.rsplit(":", 1)[1])
    await ciz.stop()
    restarted = Node(ciz.home, port=port, mdns=False, gossip_interval=0)
    await restarted.start()
    network.nodes["ciz"] = restarted
    [kept] = await restarted.melding_desk.list(state="open")
    assert (kept["meldingID"], kept["melder"], kept["status"], kept["antwoordAan"]) == (
        old_id, zk.identity.did, "ontvangen", {"idType": "DID", "id": zk.identity.did})
    assert await restarted.store.fetchall("SELECT * FROM meldingen") == []


async def test_a_reporter_has_at_most_so_many_meldingen_open_at_a_source_and_the_next_waits_its_turn(
        network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """A party related to a record cannot fill its source's store with meldingen about it: with MAX_OPEN of its own
    not yet answered, the source refuses the next (conflict) and keeps nothing of it. The reporter's outbox keeps
    that one and sends it again, and it is kept once the source has answered one of the others."""
    import uuid

    import node.care.meldingen as desk_module
    from node.errors import PeerRefused
    monkeypatch.setattr(desk_module, "MAX_OPEN_PER_REPORTER", 3, raising=False)  # without the bound: the attack runs
    ciz, zk, client = await indicatie(network, "zk5151", "client")

    def melding() -> Melding:
        return Melding(melding_id=str(uuid.uuid4()), event_type="IWLZFOUTMELDING", rule="IRG0012",
                       record=f"WlzIndicatie/{IND0}", description="")

    for _ in range(3):
        assert (await zk.client.request(ciz.url, melding(), to=ciz.identity.did)).message.status == "accepted"
    fourth = melding()
    with pytest.raises(PeerRefused) as info:
        await zk.client.request(ciz.url, fourth, to=ciz.identity.did)
    assert (info.value.code, info.value.rule) == ("conflict", "MELDING-OPEN")
    assert len(await ciz.melding_desk.list(state="open")) == 3
    assert await ciz.registers.current("Melding", fourth.melding_id) is None
    # Another reporter's meldingen are not held up by this one's.
    assert (await client.client.request(ciz.url, melding(), to=ciz.identity.did)).message.status == "accepted"
    # Through the outbox: refused for now, not for good; kept once the source answered one.
    waiting = await send(zk, ciz)
    await network.settle()
    row = await sent(zk, waiting)
    assert (row["status"], row["delivery"]) == ("verzonden", "pending") and "MELDING-OPEN" in row["last_error"]
    opened = [m for m in await ciz.melding_desk.list(state="open") if m["melder"] == zk.identity.did]
    await ciz.melding_desk.answer(opened[0]["meldingID"], "in_behandeling", None)  # still open: no room yet
    await ciz.melding_desk.answer(opened[0]["meldingID"], "afgehandeld", "hersteld")
    deadline = time.monotonic() + 10
    while (await sent(zk, waiting))["delivery"] != "delivered" and time.monotonic() < deadline:
        await zk.outbox.deliver_due()
        await asyncio.sleep(0.2)
    assert (await sent(zk, waiting))["delivery"] == "delivered"
    assert await ciz.registers.current("Melding", waiting) is not None
    assert len([m for m in await ciz.melding_desk.list(state="open") if m["melder"] == zk.identity.did]) == 3


@pytest.mark.parametrize("status, reden", [
    (["afgehandeld"], None),                 # not text: no database column takes it
    ("<b>gesloten</b>", None),               # no status a melding has
    ("afgehandeld", "x" * 200_000),          # a reason no person wrote
])
async def test_an_answer_that_is_no_melding_changes_nothing_at_the_reporter_and_is_not_retried(
        network: Network, monkeypatch: pytest.MonkeyPatch, status: Any, reden: str | None) -> None:
    """A source signs what it likes: its answer is read at the reporter only as a melding as the schema has it."""
    ciz, zk = await indicatie(network, "zk5151")
    melding_id = await send(zk, ciz)
    await network.settle()
    [kept] = await ciz.registers.list_current("Melding")
    forged = dict(kept.data or {}, status=status, **({"reden": reden} if reden else {}))
    with monkeypatch.context() as unchecked:  # the source's own check, which a hostile source does not run
        unchecked.setattr("node.store.registers.checked_record", lambda kind, data: data)
        await ciz.registers.put("Melding", forged, actor=ciz.actor, now=ciz.now())
    await network.settle()
    for hours in range(1, 4):  # what is left as it was is acted on again when due: it must have ended
        assert await zk.inbox.retry_failed(now=zk.now() + 3600 * hours) == 0
    row = await sent(zk, melding_id)
    assert (row["status"], row["reden"]) == ("ontvangen", None)
    [note] = [r for r in await zk.inbox.list() if r["event_type"] == "GEWIJZIGDE_MELDING_MELDER"]
    assert note["status"] == "refused" and "cannot be kept here" in note["detail"], note
