"""Every malformed, tampered, replayed, oversized or misaddressed message gets its stable
error code in a signed reply, and leaves the database byte-for-byte unchanged."""

from __future__ import annotations

import io
import time
import sqlite3
from contextlib import closing

import aiohttp
import pytest

from keys import Verifier, cbor, cose
from node.service import Node
from protocol import MEDIA_TYPE, Endpoint, Query
from protocol.envelope import digest
from tests.helpers import seeded
from tests.node.kit import Network, sample

pytestmark = pytest.mark.asyncio
IND0 = "31835d1d-3933-4ffe-9f57-8985f41fae4a"


def dump(node: Node) -> list[str]:
    with closing(sqlite3.connect(node.home.database_path)) as db, db:
        return list(db.iterdump())


def query() -> Query:
    return Query(template="QIR-0001-ZKi", params={"wlzIndicatieID": IND0, "uzovi": "5151"}, evidence=(), history=False)


async def post(node: Node, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.post(node.url + "/iwlz/v1/messages", data=io.BytesIO(data), headers=headers or {"Content-Type": MEDIA_TYPE}) as r:
            return r.status, await r.read()


@pytest.mark.hardening
async def test_hostile_messages_get_their_code_and_change_nothing(network: Network) -> None:
    ciz, zk, zk5050 = await network.start("ciz", "zk5151", "zk5050")
    await ciz.registers.put("WlzIndicatie", sample("wlzIndicaties", 0), actor=ciz.actor, now=ciz.now())
    sender: Endpoint = zk.endpoint
    good = sender.send(query(), to=ciz.identity.did, now=ciz.now())
    status, _ = await post(ciz, good.data)  # one real request first, so the replay below is a replay
    assert status == 200
    await network.settle()
    before = dump(ciz)

    sign1 = cose.parse_sign1(good.data)
    payload = cbor.decode(sign1.payload)
    tampered_payload = dict(payload, iat=payload["iat"] - 1)
    fresh = lambda **kw: sender.send(query(), to=ciz.identity.did, now=ciz.now(), **kw)  # noqa: E731
    cases = {
        "too-large": b"\xd2" + b"\x00" * (ciz.endpoint.max_size + 10),
        "malformed": b"\xd2\x84\x40\xa0\x40",
        "bad-signature": cbor.encode(cbor.Tag(18, [sign1.protected_bytes, {}, cbor.encode(tampered_payload), sign1.signature])),
        "replay": good.data,
        "wrong-recipient": sender.send(query(), to=zk5050.identity.did, now=ciz.now()).data,
        "expired": sender.send(query(), to=ciz.identity.did, now=ciz.now() - 3600).data,
        "not-yet-valid": sender.send(query(), to=ciz.identity.did, now=ciz.now() + 3600).data,
        "unknown-issuer": Endpoint(seeded(9), network_other_root_cert(), ciz.trust).send(query(), to=ciz.identity.did, now=ciz.now()).data,
        "unsupported": resign_with(zk, fresh().data, typ="no-such-type"),
    }
    for code, data in cases.items():
        status, body = await post(ciz, data)
        signed = cose.parse_sign1(body)  # a signed error from CIZ, bound to exactly what was sent
        signed.verify(Verifier.from_did(ciz.identity.did))
        reply = cbor.decode(signed.payload)
        assert (reply["typ"], reply["body"]["code"]) == ("error", code)
        assert reply["re"]["h"] == digest(data)  # too-large too: the requester can bind the refusal to its request
        assert status == {"too-large": 413, "malformed": 400, "bad-signature": 401, "replay": 409, "wrong-recipient": 421,
                          "expired": 401, "not-yet-valid": 401, "unknown-issuer": 401, "unsupported": 400}[code]
        assert dump(ciz) == before, f"{code} changed the database"


def network_other_root_cert() -> bytes:
    from tests.helpers import Network as Keys

    return Keys(root=seeded(8)).certificate(seeded(9), "zorgkantoor")


def resign_with(node: Node, data: bytes, **changes: object) -> bytes:
    sign1 = cose.parse_sign1(data)
    payload = cbor.decode(sign1.payload)
    payload.update(changes)
    header = {k: v for k, v in sign1.protected.items() if k != 1}
    return cose.sign1(node.identity, cbor.encode(payload), header)




@pytest.mark.hardening
async def test_http_level_junk_is_refused_without_a_500(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    before = dump(ciz)
    async with aiohttp.ClientSession() as http:
        async with http.post(ciz.url + "/iwlz/v1/messages", data=b"", headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 400
        async with http.get(ciz.url + "/iwlz/v1/messages") as r:
            assert r.status == 405
        async with http.post(ciz.url + "/iwlz/v1/messages", data=io.BytesIO(b"x" * (2 * 1024 * 1024))) as r:
            assert r.status == 413
    assert dump(ciz) == before


async def test_housekeeping_forgets_replay_ids_only_after_their_window(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    earlier = len(await ciz.store.fetchall("SELECT 1 FROM replay"))  # zk's introduction
    ciz.clock = lambda: time.time() + 200  # the introduction's window has passed
    sent = zk.endpoint.send(query(), to=ciz.identity.did, now=ciz.now(), lifetime=60)
    assert (await post(ciz, sent.data))[0] == 200
    rows = await ciz.store.fetchall("SELECT forget_after FROM replay ORDER BY forget_after DESC")
    assert len(rows) == earlier + 1 and rows[0][0] >= ciz.now() + 60
    await ciz.dispatcher.forget_old_ids(ciz.now())  # the housekeeping job "replay ids"
    assert len(await ciz.store.fetchall("SELECT 1 FROM replay")) == 1
    ciz.clock = lambda: time.time() + 3600
    await ciz.dispatcher.forget_old_ids(ciz.now())
    assert await ciz.store.fetchall("SELECT 1 FROM replay") == []
    assert len(ciz.endpoint.replay) == 0


async def test_an_upgraded_store_keeps_its_replay_ids_in_the_order_they_are_forgotten() -> None:
    """Schema 15 keeps replay ids in arrival order (forgotten from the front) instead of by (sender, id): the ids a
    store held before still count after the upgrade, first to be forgotten first."""
    from node.store.schema import MIGRATIONS
    with closing(sqlite3.connect(":memory:")) as db:
        for script in MIGRATIONS[:14]:
            db.executescript(script)
        ids = [("did:key:z6MkA", bytes([i]) * 16, 1000 - i) for i in range(5)]
        db.executemany("INSERT INTO replay (sender, message_id, forget_after) VALUES (?, ?, ?)", ids)
        db.executescript(MIGRATIONS[14])
        kept = db.execute("SELECT sender, message_id, forget_after FROM replay ORDER BY rowid").fetchall()
    assert kept == sorted(ids, key=lambda row: row[2])


async def test_a_message_replayed_after_a_restart_is_refused_and_changes_nothing(network: Network) -> None:
    """The store keeps the replay ids only to carry them over a restart (schema 15: in arrival order, without a key
    of its own): a message the node answered before it restarted is still a replay after it."""
    ciz, zk = await network.start("ciz", "zk5151")
    await ciz.registers.put("WlzIndicatie", sample("wlzIndicaties", 0), actor=ciz.actor, now=ciz.now())
    # With its certificate whole: one sent by hash would be refused after the restart for that alone.
    good = zk.endpoint.send(query(), to=ciz.identity.did, now=ciz.now(), cert_by_hash=False)
    assert (await post(ciz, good.data))[0] == 200
    await network.settle()
    await ciz.stop()
    again = Node(ciz.home, port=int(ciz.url.rsplit(":", 1)[1]), mdns=False, gossip_interval=0)
    await again.start()
    network.nodes["ciz"] = again
    before = dump(again)
    status, body = await post(again, good.data)
    assert status == 409, status  # answered again, without the ids kept over the restart
    signed = cose.parse_sign1(body)  # a signed error, bound to what was sent
    signed.verify(Verifier.from_did(again.identity.did))
    reply = cbor.decode(signed.payload)
    assert (reply["typ"], reply["body"]["code"]) == ("error", "replay")
    assert reply["re"]["h"] == digest(good.data)
    assert dump(again) == before  # nothing stored, the id not remembered twice


async def test_a_flood_of_scrapes_costs_one_refresh_a_second(network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """/metrics is on the peer port for Prometheus, so anyone can ask for it: each scrape read the store (counts)
    and rendered every metric, ~1 ms, where a junk message costs ~0.06 ms. Scrapes within a second share one."""
    import asyncio

    refreshed: list[float] = []
    real = Node._refresh_gauges

    async def counted(self: Node) -> None:
        refreshed.append(time.monotonic())
        await real(self)

    monkeypatch.setattr(Node, "_refresh_gauges", counted)
    (ciz,) = await network.start("ciz")
    async with aiohttp.ClientSession() as http:
        async def scrape() -> str:
            async with http.get(ciz.url + "/metrics") as r:
                return await r.text()

        started = time.monotonic()
        pages = await asyncio.gather(*(scrape() for _ in range(200)))
        elapsed = time.monotonic() - started
        assert all("iwlz_store_records" in page for page in pages)
        assert len(refreshed) <= 1 + int(elapsed)
        await ciz.registers.put("WlzIndicatie", sample("wlzIndicaties", 0), actor=ciz.actor, now=ciz.now())
        await asyncio.sleep(1.05)
        assert "iwlz_store_records 1.0" in await scrape()  # a second later, the page is made again
