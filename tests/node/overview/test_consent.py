"""Consent as evidence, with real nodes: a party outside the matrix reads what the client allowed, where he
allowed it, for the purpose and the time he allowed it, until he withdraws it — also at a source that was down
when he did."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from node.errors import PeerRefused, ValidationError
from node.notify.consents import consent_ended
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


async def held_by(za_b: Node) -> list[bytes]:
    return [bytes(s) for s, in await za_b.store.fetchall("SELECT signed FROM evidence WHERE kind = 'Toestemming'")]


async def read(za_b: Node, source: Node, *, purpose: str = PURPOSE, template: str = TEMPLATE, bsn: str = BSN0,
               evidence: list[bytes] | None = None) -> Any:
    """``za_b`` asks ``source``, presenting the consents it holds (``evidence``: a copy it kept of them)."""
    presented = await held_by(za_b) if evidence is None else evidence
    return await za_b.query_peer(source.url, template, {"bsn": bsn, "doel": purpose}, presented)


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


async def withdraw_at(client: Node, consent: str, source: Node) -> None:
    """He withdraws the consent; back once ``source`` has heard."""
    client.outbox.first_delay, client.outbox.max_delay = 0.05, 0.2
    await client.client_view.revoke(consent)
    deadline = time.monotonic() + 5
    while not await source.store.fetchall("SELECT 1 FROM revoked_consents") and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


HELD = "SELECT record_id FROM evidence WHERE kind = 'Toestemming'"


async def withdrawn_at_source_and_party(client: Node, consent: str, source: Node, party: Node, party_id: str) -> None:
    """He withdraws it: ``source`` (CIZ, named by KVK) and ``party`` (named by ``party_id``) are told, and the party
    lets go of the consent it held."""
    await withdraw_at(client, consent, source)
    deadline = time.monotonic() + 5
    while await party.store.fetchall(HELD) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert await party.store.fetchall(HELD) == []
    rows = {(r["event_type"], r["receiver_id"]): r["status"] for r in await client.outbox.list()}
    assert rows == {("VERWIJDERDE_TOESTEMMING_BRON", "62253778"): "delivered",
                    ("VERWIJDERDE_TOESTEMMING_ONTVANGER", party_id): "delivered"}


async def stop(network: Network, zk: Node) -> int:
    """His zorgkantoor goes away; the port it comes back at."""
    port = int(zk.url.rsplit(":", 1)[1])
    await zk.stop()
    network.nodes.pop("zk5151")
    return port


async def back_and_told(network: Network, zk: Node, port: int) -> Node:
    """His zorgkantoor is back; it returns once it has heard of a withdrawal (or after 10 s)."""
    restarted = Node(zk.home, port=port, mdns=False, gossip_interval=0)
    await restarted.start()
    network.nodes["zk5151"] = restarted
    deadline = time.monotonic() + 10
    while not await restarted.store.fetchall("SELECT 1 FROM revoked_consents") and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return restarted


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
    kept = await held_by(za_b)  # a party that keeps a copy after he withdraws it
    zk_port = await stop(network, zk)
    client.outbox.first_delay, client.outbox.max_delay = 0.05, 0.2
    await client.client_view.revoke(consent)
    deadline = time.monotonic() + 5
    while not await ciz.store.fetchall("SELECT 1 FROM revoked_consents") and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert "withdrawn" in await denied(read(za_b, ciz, evidence=kept))  # at once
    restarted = await back_and_told(network, zk, zk_port)
    assert "withdrawn" in await denied(read(za_b, restarted, evidence=kept))  # once it was back, it heard too
    rows = {r["receiver_id"]: r["status"] for r in await client.outbox.list()}
    assert rows == {"62253778": "delivered", "5151": "delivered", "87654321": "delivered"}  # the sources; the party
    [listed] = await client.client_view.consents()
    assert listed["ingetrokken"] is True
    # Each source's audit shows the withdrawal and the refusals.
    events = [(e.event, e.result) for e in await ciz.audit.entries(limit=10_000)]
    assert ("notification.received VERWIJDERDE_TOESTEMMING_BRON", "stored") in events
    assert ("query GEGEVENS-MET-TOESTEMMING", "denied") in events


def _consent_signed_by(node: Node, consent_id: str, bsn: str, version: int, until: str = "2099-12-31") -> bytes:
    from protocol.records import RecordVersion

    data = {"toestemmingID": consent_id, "bsn": bsn, "ontvanger": {"agb": "87654321"}, "bronnen": ["kvk:62253778"],
            "templates": [TEMPLATE], "doel": PURPOSE, "geldigTot": until, "bsnSleutel": node.home.bsn_key().hex()}
    return node.registers.signer.sign(RecordVersion("Toestemming", consent_id, version, node.identity.did, node.now(), False, data))


@pytest.mark.parametrize("bsn", ["737459086", BSN0], ids=["his-own-bsn", "the-other-clients-bsn"])
async def test_another_client_cannot_take_the_place_of_a_consent_held_for_someone_else(network: Network, bsn: str) -> None:
    """Attack: Visser, a client with a certificate, learns the id of Jansen's consent and hands the party Jansen
    consented to a consent of his own under that id, of a higher version: about himself, or forged about Jansen.
    Before, either took the place of Jansen's (held evidence was kept by kind and id, whoever signed it): the
    party could no longer read what Jansen allowed."""
    from protocol import Consent

    ciz, zk, za_b, client, client2 = await parties(network)
    consent_id = await grant(client, sources=("kvk:62253778",))
    [(record, _, _)] = await read(za_b, ciz)
    assert record.record_id == IND0
    theirs = _consent_signed_by(client2, consent_id, bsn, version=9)
    with pytest.raises(PeerRefused) as refused:  # about another client; or under the id of another's held here
        await client2.send_to_peer(za_b.url, Consent(consents=(theirs,)))
    assert refused.value.code == ("malformed" if bsn == BSN0 else "conflict")
    held = await za_b.store.fetchall("SELECT record_id, wlzIndicatieID, source FROM evidence WHERE kind = 'Toestemming'")
    assert held == [(consent_id, f"bsn:{BSN0}", client.identity.did)]
    [(record, _, _)] = await read(za_b, ciz)
    assert record.record_id == IND0


async def test_a_client_holds_a_bounded_number_of_consents_at_a_party(network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack: a client signs consents with new ids, as many as he likes, for a party he names. Before, the party
    kept every one (and checks every one it holds again each time it refreshes its evidence)."""
    import uuid

    from node.notify import consents as consents_module
    from protocol import Consent

    monkeypatch.setattr(consents_module, "CONSENTS_PER_CLIENT", 3)
    ciz, zk, za_b, client, client2 = await parties(network)
    ids = [str(uuid.uuid4()) for _ in range(5)]
    await client.send_to_peer(za_b.url, Consent(consents=tuple(_consent_signed_by(client, i, BSN0, 1) for i in ids[:2])))
    with pytest.raises(PeerRefused) as refused:  # two more than the room left: neither is kept
        await client.send_to_peer(za_b.url, Consent(consents=tuple(_consent_signed_by(client, i, BSN0, 1) for i in ids[2:])))
    assert (refused.value.code, refused.value.rule) == ("conflict", "TOESTEMMING-HELD")
    await client.send_to_peer(za_b.url, Consent(consents=(_consent_signed_by(client, ids[2], BSN0, 1),)))
    with pytest.raises(PeerRefused):
        await client.send_to_peer(za_b.url, Consent(consents=(_consent_signed_by(client, ids[3], BSN0, 1),)))
    # A newer version of one held takes its place; another client has room of his own.
    await client.send_to_peer(za_b.url, Consent(consents=(_consent_signed_by(client, ids[0], BSN0, 2),)))
    await client2.send_to_peer(za_b.url, Consent(consents=(_consent_signed_by(client2, ids[3], "737459086", 1),)))
    # One that has ended makes room, and goes.
    await client.send_to_peer(za_b.url, Consent(consents=(_consent_signed_by(client, ids[1], BSN0, 2, "2020-01-01"),)))
    await client.send_to_peer(za_b.url, Consent(consents=(_consent_signed_by(client, ids[4], BSN0, 1),)))
    held = await za_b.store.fetchall("SELECT record_id, version, wlzIndicatieID FROM evidence WHERE kind = 'Toestemming' "
                                     "AND wlzIndicatieID = ? ORDER BY record_id", (f"bsn:{BSN0}",))
    assert held == sorted([(ids[0], 2, f"bsn:{BSN0}"), (ids[2], 1, f"bsn:{BSN0}"), (ids[4], 1, f"bsn:{BSN0}")])
    assert await za_b.store.fetchall("SELECT record_id FROM evidence WHERE wlzIndicatieID = 'bsn:737459086'") == [(ids[3],)]


async def test_a_consent_signed_more_than_the_freshness_bound_ago_still_opens_what_it_covers(network: Network) -> None:
    """Evidence older than the freshness bound (an hour) is confirmed with its signer; a consent's signer is a
    client's node, which no peer table holds. Before, every consent opened nothing an hour after it was signed:
    the party would have to ask the client for a new one each hour. A consent ends at its geldigTot, or when he
    withdraws it, which his node pushes to every source it names (the test above): it is not asked after."""
    ciz, zk, za_b, client, client2 = await parties(network)
    consent = await grant(client, sources=("kvk:62253778",))
    ciz.pdp.freshness = -1  # every piece of evidence counts as older than the bound
    [(record, _, _)] = await read(za_b, ciz)
    assert record.record_id == IND0
    kept = await held_by(za_b)
    await withdraw_at(client, consent, ciz)
    assert "withdrawn" in await denied(read(za_b, ciz, evidence=kept))


async def test_a_consent_naming_its_source_by_did_is_withdrawn_there_too(network: Network) -> None:
    """Attack on withdrawal: a source reads a consent's ``bronnen`` by identifier or by its did, and a consent is not
    asked after once old; but his withdrawal went only to the sources named by KVK, UZOVI or AGB. Before, a consent
    naming CIZ by its did was still honoured there after he withdrew it, until its geldigTot."""
    ciz, zk, za_b, client, client2 = await parties(network)
    consent = await grant(client, sources=(ciz.identity.did,))
    [(record, _, _)] = await read(za_b, ciz)
    assert record.record_id == IND0
    kept = await held_by(za_b)
    await withdraw_at(client, consent, ciz)
    assert "withdrawn" in await denied(read(za_b, ciz, evidence=kept))
    withdrawals = {(r["event_type"], r["receiver_did"] or r["receiver_id"]): r["status"] for r in await client.outbox.list()}
    assert withdrawals == {("VERWIJDERDE_TOESTEMMING_BRON", ciz.identity.did): "delivered",
                           ("VERWIJDERDE_TOESTEMMING_ONTVANGER", "87654321"): "delivered"}


async def test_a_consent_names_its_sources_in_a_form_a_source_reads(network: Network) -> None:
    """A source named in another form ("KVK:…", a name, "agb:" with no code) would never read it as its own, and
    his withdrawal could not be addressed to it: such a consent is not signed."""
    ciz, zk, za_b, client, client2 = await parties(network)
    for wrong in ("KVK:62253778", "CIZ", "agb:", "did:", "*"):
        with pytest.raises(ValidationError):
            await grant(client, sources=(wrong,))
    assert await client.store.fetchall("SELECT 1 FROM records WHERE kind = 'Toestemming'") == []


async def test_the_party_he_gave_it_to_lets_go_of_a_consent_he_withdrew(network: Network) -> None:
    """The party kept a withdrawn consent, which names his BSN, until its geldigTot: his withdrawal went to the
    sources only. It goes to the party too now, which lets go of it; a withdrawal sent by anyone else changes
    nothing there."""
    from protocol import Notification, Subject

    ciz, zk, za_b, client, client2 = await parties(network)
    consent = await grant(client, sources=("kvk:62253778",))
    held = HELD
    assert await za_b.store.fetchall(held) == [(consent,)]
    forged = Notification(notification_id=str(uuid.uuid4()), event_type="VERWIJDERDE_TOESTEMMING_ONTVANGER",
                          timestamp=client2.now(), sender_id_type="DID", sender_id=client2.identity.did,
                          receiver_id_type="AGB", receiver_id="87654321", subscription_id=None,
                          subjects=(Subject(subject=f"Toestemming/{consent}", record_id=f"Toestemming/{consent}"),))
    await client2.send_to_peer(za_b.url, forged)  # another client "withdraws" it
    await asyncio.sleep(0.3)
    assert await za_b.store.fetchall(held) == [(consent,)]
    await withdrawn_at_source_and_party(client, consent, ciz, za_b, "87654321")


async def test_a_party_he_named_by_its_did_lets_go_of_a_consent_he_withdrew_too(network: Network) -> None:
    """A consent may name its party by the did of its node, as it may name a source: that party was told nothing of
    his withdrawal (only AGB, UZOVI and KVK were told) and kept the consent, which names his BSN, until its
    geldigTot. It is told by did now; a machtiging goes to a person, whose node asks his instead (no peer names it)."""
    ciz, zk, za_b, client, client2 = await parties(network)
    result = await client.client_view.grant(to=za_b.identity.did, templates=[TEMPLATE], purpose=PURPOSE,
                                            until="2099-12-31", sources=["kvk:62253778"])
    assert result["handed_over"], result
    consent = str(result["id"])
    assert await za_b.store.fetchall(HELD) == [(consent,)]
    await withdrawn_at_source_and_party(client, consent, ciz, za_b, za_b.identity.did)


async def test_a_withdrawn_machtiging_goes_to_its_sources_and_not_to_the_person_it_was_given_to() -> None:
    """Her node is in no peer table: a withdrawal addressed to it would wait for ever. It asks his node instead."""
    from node.notify.events import consent_events
    from node.store.records import MACHTIGING

    person = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    old = {"toestemmingID": "t1", "bsn": BSN0, "ontvanger": {"did": person}, "bronnen": ["kvk:62253778"],
           "templates": ["CLIENT-EIGEN-GEGEVENS"], "doel": MACHTIGING, "geldigTot": "2099-12-31"}
    assert [(p.event_type, p.receiver_id) for p in consent_events("t1", old, None)] == [
        ("VERWIJDERDE_TOESTEMMING_BRON", "62253778")]
    given = {**old, "doel": PURPOSE}  # the same to a node by did, for another purpose: it is told
    assert [(p.event_type, p.receiver_id, p.receiver_did) for p in consent_events("t1", given, None)] == [
        ("VERWIJDERDE_TOESTEMMING_ONTVANGER", person, person), ("VERWIJDERDE_TOESTEMMING_BRON", "62253778", None)]


async def test_a_withdrawal_is_never_given_up_while_its_source_is_away(network: Network) -> None:
    """A source away longer than outbox_dead_after (a week) never heard of the withdrawal: the notification ended as a
    dead letter, and the source, back, honoured the withdrawn consent until its geldigTot. A withdrawal waits for
    its source for as long as it takes; other notifications still end."""
    ciz, zk, za_b, client, client2 = await parties(network)
    consent = await grant(client)
    kept = await held_by(za_b)
    zk_port = await stop(network, zk)
    client.outbox.first_delay, client.outbox.max_delay, client.outbox.probe_max_delay = 0.05, 0.1, 0.1
    client.outbox.dead_after = 0.3
    await client.client_view.revoke(consent)
    await asyncio.sleep(1.5)  # many attempts, five times dead_after
    rows = {r["receiver_id"]: r["status"] for r in await client.outbox.list()}
    assert rows["5151"] == "pending"
    restarted = await back_and_told(network, zk, zk_port)
    assert "withdrawn" in await denied(read(za_b, restarted, evidence=kept))


async def test_the_party_lets_go_of_a_consent_once_it_has_ended(network: Network) -> None:
    """A consent that ended opens nothing, and names his BSN: the party kept it for as long as it ran, unless his
    next consent needed its place. It goes at the next pass over held evidence after its geldigTot; one still
    running stays. His gemachtigde's node lets go of an ended machtiging the same way."""
    from datetime import date, timedelta

    from tests.node.overview.test_machtiging import machtig

    ciz, zk, za_b, client, client2 = await parties(network)
    tomorrow = (date.fromtimestamp(client.now()) + timedelta(days=1)).isoformat()
    ending = await grant(client, until=tomorrow, sources=("kvk:62253778",))
    running = await grant(client, sources=("kvk:62253778",))
    machtiging = await machtig(client, client2, until=tomorrow)
    held = "SELECT record_id FROM evidence WHERE kind = 'Toestemming' ORDER BY record_id"
    assert await za_b.store.fetchall(held) == sorted([(ending,), (running,)])
    for node in (za_b, client2):
        await node.inbox.refresh_evidence(now=node.now(), margin=0)
    assert len(await za_b.store.fetchall(held)) == 2 and await client2.store.fetchall(held) == [(machtiging,)]
    two_days_on = client.now() + 2 * 86400
    for node in (za_b, client2):
        await node.inbox.refresh_evidence(now=two_days_on, margin=0)
    assert await za_b.store.fetchall(held) == [(running,)]
    assert await client2.store.fetchall(held) == []


async def test_a_consent_holds_at_its_party_past_the_end_of_the_certificate_he_signed_it_under(network: Network) -> None:
    """Attack on renewal, as for a machtiging: he renewed his (short) certificate, and the party held the consent
    signed under the old one; at its end the party let go of it ("no longer verifies") and every source refused
    it, until he gave a new one."""
    ciz, zk, za_b, client, client2 = await parties(network)
    network.net.issue(client.home, now=int(time.time()), valid_for=2 * 3600)
    assert await client.reload_certificate()
    await grant(client, sources=("kvk:62253778",))
    network.net.issue(client.home, now=int(time.time()), valid_for=365 * 24 * 3600)  # renewed, the same key
    assert await client.reload_certificate()
    later = time.time() + 3 * 3600  # the certificate he signed it under has ended
    for _ in range(200):  # his node signs it again and hands it to the party, in the background
        if not consent_ended((await held_by(za_b))[0], za_b.trust, int(later)):
            break
        await asyncio.sleep(0.05)
    for node in (ciz, za_b, client):
        node.clock = lambda: later
    await za_b.inbox.refresh_evidence(now=int(later), margin=0)
    [(record, _, _)] = await read(za_b, ciz)
    assert record.record_id == IND0


async def test_a_consent_whose_party_was_away_when_he_gave_it_is_handed_when_it_is_back(network: Network) -> None:
    ciz, zk, za_b, client, client2 = await parties(network)
    port = int(za_b.url.rsplit(":", 1)[1])
    await za_b.stop()
    network.nodes.pop("za_b")
    result = await client.client_view.grant(to="agb:87654321", templates=[TEMPLATE], purpose=PURPOSE,
                                            until="2099-12-31", sources=["kvk:62253778"])
    assert not result["handed_over"]
    assert await client.client_view.hand_again() == 0  # still away
    za_b = Node(za_b.home, port=port, mdns=False, gossip_interval=0)
    await za_b.start()
    network.nodes["za_b"] = za_b
    assert await client.client_view.hand_again() == 1  # as the hourly job does
    assert await client.client_view.hand_again() == 0  # it holds this one
    [(record, _, _)] = await read(za_b, ciz)
    assert record.record_id == IND0


async def test_a_consent_given_before_his_node_kept_where_it_was_handed_is_handed_again_all_the_same(
        network: Network) -> None:
    ciz, zk, za_b, client, client2 = await parties(network)
    consent = await grant(client, sources=("kvk:62253778",))
    await client.store.write([("DELETE FROM settings WHERE name LIKE 'client.handed.%'", (), False)])  # as before
    await za_b.store.write([("DELETE FROM evidence", (), False)])
    assert await client.client_view.hand_again() == 1  # to its party by the peer table
    assert await client.client_view.hand_again() == 0
    [(record, _, _)] = await read(za_b, ciz)
    assert record.record_id == IND0 and len(await held_by(za_b)) == 1
    assert consent


async def test_a_consent_he_withdrew_after_moving_to_a_new_key_opens_nothing_by_a_copy_signed_under_the_old_one(
        network: Network) -> None:
    """Attack on a withdrawal after a key switch: a source honours a withdrawal from the client who signed the
    consent, by did; he moved to a new key (iwlz key rotate: not a revocation, the old certificate holds until its
    end), and the party kept the copy he signed under the old one. His withdrawal, from the new did, did not
    cover it: the party read his data by that copy until the old certificate ended."""
    ciz, zk, za_b, client, client2 = await parties(network)
    await grant(client, sources=("kvk:62253778",))
    [old_copy] = await held_by(za_b)
    client.home.rotate_key()
    network.net.issue(client.home, now=int(time.time()), valid_for=365 * 24 * 3600)
    assert await client.reload_certificate()
    [consent] = [c["id"] for c in await client.client_view.consents()]
    from protocol import Notification, Subject

    forged = Notification(notification_id=str(uuid.uuid4()), event_type="VERWIJDERDE_TOESTEMMING_BRON",
                          timestamp=client2.now(), sender_id_type="DID", sender_id=client2.identity.did,
                          receiver_id_type="KVK", receiver_id="62253778", subscription_id=None,
                          subjects=(Subject(subject=f"Toestemming/{consent}", record_id=f"Toestemming/{consent}"),))
    await client2.send_to_peer(ciz.url, forged)  # another client "withdraws" it: his certificate is not of this BSN
    [(record, _, _)] = await read(za_b, ciz, evidence=[old_copy])
    assert record.record_id == IND0
    client.outbox.first_delay, client.outbox.max_delay = 0.05, 0.2
    await client.client_view.revoke(consent)
    deadline = time.monotonic() + 5
    while len(await ciz.store.fetchall("SELECT 1 FROM revoked_consents")) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert "withdrawn" in await denied(read(za_b, ciz, evidence=[old_copy]))
