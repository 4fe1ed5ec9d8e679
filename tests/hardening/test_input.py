"""Every message read whole, every input bounded, no 500 — with real nodes on 127.0.0.1.

Each test here failed before its fix: a query whose body arrived in two TCP
reads was refused as malformed; an integer beyond SQLite's range broke the
audit chain; a gzip header or a non-UTF-8 byte gave a plain-text 500; a
notification whose subject did not fit its event was acknowledged and then
stuck for ever.
"""

from __future__ import annotations

import asyncio
import io
import sqlite3
from contextlib import closing
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from keys import cbor, cose
from node.service import Node
from protocol import MEDIA_TYPE, Query, codec
from protocol.envelope import digest
from protocol.messages import MAX_TIME, MAX_UINT
from tests.hardening.forge import forge
from tests.node.kit import IND0, Network, put, sample

pytestmark = pytest.mark.asyncio


def dump(node: Node) -> list[str]:
    with closing(sqlite3.connect(node.home.database_path)) as db, db:
        return [line for line in db.iterdump() if '"replay"' not in line]


async def raw_http(node: Node, head: bytes, parts: list[bytes], pause: float = 0.05) -> tuple[int, bytes]:
    """Send an HTTP request in separate TCP writes, ``pause`` seconds apart; returns status and body."""
    host, port = node.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head)
    for part in parts:
        await writer.drain()
        await asyncio.sleep(pause)
        writer.write(part)
    await writer.drain()
    status_line = await reader.readline()
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    writer.close()
    return int(status_line.split()[1]), body


def reply_of(node: Node, body: bytes) -> dict:
    signed = cose.parse_sign1(body)
    return cbor.decode(signed.payload)


async def test_a_query_that_arrives_in_several_tcp_reads_is_read_whole(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    data = zk.endpoint.send(Query(template="QIR-0001-ZKi", params={"wlzIndicatieID": IND0, "uzovi": "5151"},
                                  evidence=(), history=False), to=ciz.identity.did, now=ciz.now()).data
    head = (f"POST /iwlz/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: {MEDIA_TYPE}\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode()
    cuts = [0, 100, 300, len(data) - 7, len(data)]
    status, body = await raw_http(ciz, head, [data[a:b] for a, b in zip(cuts, cuts[1:])])
    reply = reply_of(ciz, body)
    assert status == 200 and reply["typ"] == "query-result" and reply["re"]["h"] == digest(data)


async def test_a_message_of_the_size_limit_less_one_is_taken_and_one_over_is_refused_bound(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    limit = ciz.endpoint.max_size

    def sized(target: int) -> bytes:
        pad = target - 1000
        for _ in range(6):  # find the evidence padding that gives exactly ``target`` bytes
            data = zk.endpoint.send(Query(template="RECORD-STATUS", params={"kind": "WlzIndicatie", "id": IND0},
                                          evidence=(b"\0" * pad,), history=False), to=ciz.identity.did, now=ciz.now()).data
            pad += target - len(data)
        assert len(data) == target
        return data

    async with aiohttp.ClientSession() as http:
        for size, status in ((limit - 1, 200), (limit + 1, 413)):
            data = sized(size)
            async with http.post(ciz.url + "/iwlz/v1/messages", data=io.BytesIO(data),
                                 headers={"Content-Type": MEDIA_TYPE}) as r:
                body = await r.read()
                assert r.status == status
            reply = reply_of(ciz, body)
            assert reply["re"]["h"] == digest(data)  # the refusal too is bound to exactly what was sent


@pytest.mark.parametrize("field,value,ok", [
    ("seq", MAX_UINT, True), ("seq", MAX_UINT + 1, False), ("seq", 2**64 - 1, False),
])
async def test_an_announcement_with_an_integer_at_and_beyond_its_maximum(network: Network, field: str, value: int,
                                                                         ok: bool) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    before = dump(ciz)
    body = {"seq": value, "endpoints": [zk.url], "registers": ["bemiddeling"], "templates": [], "events": []}
    data = forge(zk.endpoint, "announcement", body, to="*", now=ciz.now(), exp=ciz.now() + 3600)
    async with aiohttp.ClientSession() as http:
        async with http.post(ciz.url + "/iwlz/v1/messages", data=data, headers={"Content-Type": MEDIA_TYPE}) as r:
            assert r.status == (200 if ok else 400)
            reply = reply_of(ciz, await r.read())
    if ok:
        assert ciz.peers.get(zk.identity.did).seq == MAX_UINT
    else:
        assert reply["body"]["code"] == "malformed" and dump(ciz) == before
    # Whatever came in, the node keeps writing and its chain holds.
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    assert (await ciz.audit.verify(full=True))[0]


@pytest.mark.parametrize("since,code", [(MAX_TIME, None), (MAX_TIME + 1, "malformed"), (10**12, "malformed"),
                                        (MAX_UINT + 1, "malformed")])
async def test_an_access_log_request_with_since_at_and_beyond_its_maximum(network: Network, since: int,
                                                                          code: str | None) -> None:
    ciz, client = await network.start("ciz", "client")
    data = forge(client.endpoint, "access-log-request", {"bsn": "106658037", "since": since,
                                                          "bsn_key": client.home.bsn_key()},
                 to=ciz.identity.did, now=ciz.now(), sealed=True)
    async with aiohttp.ClientSession() as http:
        async with http.post(ciz.url + "/iwlz/v1/messages", data=data, headers={"Content-Type": MEDIA_TYPE}) as r:
            assert r.status < 500
            reply = reply_of(ciz, await r.read())
    if code is None:
        assert reply["typ"] == "access-log-result"
    else:
        assert reply["body"]["code"] == code


async def test_a_gzip_header_with_a_body_that_is_not_gzip_is_refused_signed(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    data = zk.endpoint.send(Query(template="RECORD-STATUS", params={"kind": "WlzIndicatie", "id": IND0}, evidence=(),
                                  history=False), to=ciz.identity.did, now=ciz.now()).data
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        for encoding in ("gzip", "deflate", "br"):
            headers = {"Content-Type": MEDIA_TYPE, "Content-Encoding": encoding}
            async with http.post(ciz.url + "/iwlz/v1/messages", data=data, headers=headers) as r:
                assert r.status == 400
                reply = reply_of(ciz, await r.read())
                assert reply["body"]["code"] == "unsupported" and reply["re"]["h"] == digest(data)


async def test_a_header_that_is_not_utf8_gets_401_from_the_admin_api(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    host, port = ciz.admin_url.removeprefix("http://").split(":")
    for value in (b"Bearer \xff\xfe", b"\xc3\x28", "Bearer é".encode("latin-1")):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /admin/v1/node HTTP/1.1\r\nHost: x\r\nAuthorization: " + value + b"\r\nConnection: close\r\n\r\n")
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        writer.close()
        assert status == 401


async def test_a_notification_whose_subject_does_not_fit_its_event_is_refused_before_it_is_acknowledged(
        network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    body = {"notification_id": "0b9e1c0e-1d2a-4f5b-9c3d-2e4f6a8b0c1d", "event_type": "NIEUWE_INDICATIE_ZORGKANTOOR",
            "timestamp": ciz.now(), "sender_id_type": "KVK", "sender_id": "62253778", "receiver_id_type": "UZOVI",
            "receiver_id": "5151", "subscription_id": None,
            "subjects": [{"subject": "Bemiddeling/ca6cd66c-78e8-45bc-afb7-3578f78e1ffa",
                          "record_id": "Bemiddeling/ca6cd66c-78e8-45bc-afb7-3578f78e1ffa"}]}
    data = forge(ciz.endpoint, "notification", body, to=zk.identity.did, now=ciz.now())
    async with aiohttp.ClientSession() as http:
        async with http.post(zk.url + "/iwlz/v1/messages", data=data, headers={"Content-Type": MEDIA_TYPE}) as r:
            reply = reply_of(zk, await r.read())
    assert reply["body"]["code"] == "malformed" and "WlzIndicatie" in reply["body"]["reason"]
    assert await zk.inbox.list() == []


@pytest.mark.parametrize("step", ["_plan", "_settle"])
async def test_a_notification_that_cannot_be_acted_on_ends_rejected_not_stuck(network: Network, monkeypatch,
                                                                               step: str) -> None:
    ciz, zk = await network.start("ciz", "zk5151")

    def broken(*args: object) -> None:
        raise KeyError("something the code did not foresee")

    async def broken_async(*args: object) -> None:
        broken()

    monkeypatch.setattr(zk.inbox, step, broken if step == "_plan" else broken_async)
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    await network.settle()
    [row] = await zk.inbox.list()
    assert (row["status"], row["detail"]) == ("rejected", "could not be acted on: KeyError")
    assert [r["status"] for r in await ciz.outbox.list()] == ["delivered"]


async def test_the_node_answers_no_500_to_anything_in_a_sample_of_junk(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    before = dump(ciz)
    cases = [(b"", {}), (b"\xd2\x84" + b"\x00" * 50, {}), (codec.encode([1, 2]), {"Content-Encoding": "gzip"}),
             (b"x" * 5000, {"Content-Length": "5000", "Content-Type": "text/plain"})]
    async with aiohttp.ClientSession() as http:
        for data, headers in cases:
            async with http.post(ciz.url + "/iwlz/v1/messages", data=data, headers=headers) as r:
                assert r.status < 500
        for path in ("/iwlz/v1/announcement", "/health", "/metrics", "/iwlz/v1/policy", "/nothing"):
            async with http.get(ciz.url + path) as r:
                assert r.status < 500
    assert dump(ciz) == before


@pytest_asyncio.fixture
async def internal_service() -> Any:
    """An HTTP service on the node's own network that no member should make the node call: it records every call."""
    calls: list[str] = []

    async def record(request: web.Request) -> web.Response:
        calls.append(request.path_qs)
        return web.Response(text="done")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", calls
    await runner.cleanup()


@pytest.mark.parametrize("typ,tail", [("announcement", "/admin/delete?id=7&x="), ("announcement", "/admin#"),
                                      ("subscribe", "/admin/delete?id=7&x=")])
async def test_an_endpoint_cannot_steer_a_node_to_another_path(network: Network, internal_service: Any, typ: str,
                                                               tail: str) -> None:
    """A node appends its own paths to a peer's endpoint (/iwlz/v1/messages). With a query or a fragment in the
    endpoint a member could make it call any path of any service it can reach (a blind request from inside): the
    rest of the path becomes a parameter, or is cut off."""
    ciz, member = await network.start("ciz", "zk5151" if typ == "announcement" else "client")
    service, calls = internal_service
    if typ == "announcement":
        seq = ciz.peers.get(member.identity.did).seq + 1  # news: newer than what the node holds
        body: dict[str, Any] = {"seq": seq, "endpoints": [service + tail], "registers": [], "templates": [], "events": []}
        data = forge(member.endpoint, "announcement", body, to="*", now=ciz.now(), exp=ciz.now() + 3600)
    else:
        body = {"events": ["GEWIJZIGDE_INDICATIE_ZORGKANTOOR"], "bsn": "106658037", "endpoint": service + tail}
        data = forge(member.endpoint, "subscribe", body, to=ciz.identity.did, now=ciz.now(), sealed=True)
    before = dump(ciz)
    async with aiohttp.ClientSession() as http:
        async with http.post(ciz.url + "/iwlz/v1/messages", data=data, headers={"Content-Type": MEDIA_TYPE}) as r:
            assert r.status == 400
            reply = reply_of(ciz, await r.read())
    assert reply["body"]["code"] == "malformed" and "endpoint" in reply["body"]["reason"]
    assert dump(ciz) == before
    # A change the member hears of goes where it always did, and the service is never called.
    record = sample("wlzIndicaties", 0)  # the client's: a new indicatie, then a change to it
    await put(ciz, "WlzIndicatie", record)
    await put(ciz, "WlzIndicatie", record | {"besluitnummer": "9" + record["besluitnummer"][1:]})
    await network.settle()
    assert calls == []


@pytest.mark.parametrize("field,count", [("endpoints", 9), ("registers", 2000), ("events", 2000)])
async def test_an_announcement_that_every_node_would_keep_and_pass_on_is_bounded(network: Network, field: str,
                                                                                 count: int) -> None:
    """Every node keeps a member's announcement in its peer table and passes it on in gossip, whose rounds have a
    budget of bytes: one of ~60 kB would be kept everywhere and eat most of a round, and one larger than a round
    stops the announcements wanted after it in that exchange (a round hands them out in order until its bytes run
    out)."""
    ciz, zk = await network.start("ciz", "zk5151")
    body: dict[str, Any] = {"seq": ciz.peers.get(zk.identity.did).seq + 1, "endpoints": [zk.url], "registers": [],
                            "templates": [], "events": []}
    body[field] = [zk.url] * count if field == "endpoints" else [f"name{n:04}" + "x" * 20 for n in range(count)]
    data = forge(zk.endpoint, "announcement", body, to="*", now=ciz.now(), exp=ciz.now() + 3600)
    before = dump(ciz)
    async with aiohttp.ClientSession() as http:
        async with http.post(ciz.url + "/iwlz/v1/messages", data=data, headers={"Content-Type": MEDIA_TYPE}) as r:
            reply = reply_of(ciz, await r.read())
    assert reply["body"]["code"] in ("malformed", "too-large"), reply["body"]
    assert dump(ciz) == before
    # Nor does it come in relayed by gossip.
    assert await ciz.discovery.absorb_announcements([data], source="gossip") == 0
    assert dump(ciz) == before


async def test_junk_from_anyone_costs_the_log_a_line_a_minute_per_code_not_a_line_each(
        network: Network, caplog: pytest.LogCaptureFixture) -> None:
    """Anyone who can reach the port can send junk, and a member messages that are refused: a log line for each let
    them fill the operator's disk (2,000 a second is ~20 GB a day). /metrics counts every refusal; the log names
    each kind once a minute, with how many there were."""
    import logging

    (ciz, zk) = await network.start("ciz", "zk5151")
    junk = [b"\xd2\x84\x40\xa0\x40", b"not cbor at all", b"\xd2" + b"\x00" * 40]
    late = [zk.endpoint.send(Query(template="QIR-0001-ZKi", params={"wlzIndicatieID": IND0, "uzovi": "5151"},
                                   evidence=(), history=False), to=ciz.identity.did, now=ciz.now() - 3600).data
            for _ in range(50)]
    with caplog.at_level(logging.INFO, logger="node.server.app"):
        async with aiohttp.ClientSession() as http:
            for data in [*junk * 100, *late]:
                async with http.post(ciz.url + "/iwlz/v1/messages", data=data, headers={"Content-Type": MEDIA_TYPE}) as r:
                    assert r.status in (400, 401)
    lines = [r.getMessage() for r in caplog.records if r.name == "node.server.app"]
    assert len(lines) <= 3, lines[:5]  # one for malformed, one for expired (and at most one more kind)
    assert any("(malformed)" in line for line in lines) and any("(expired)" in line for line in lines)
    async with aiohttp.ClientSession() as http:
        async with http.get(ciz.url + "/metrics") as r:
            metrics = await r.text()
    assert 'iwlz_requests_total{outcome="malformed",type="unknown"} 300.0' in metrics
    assert 'iwlz_requests_total{outcome="expired",type="unknown"} 50.0' in metrics


async def test_a_throttled_log_names_a_kind_once_a_minute_then_how_many_more() -> None:
    import logging

    from node.quiet import Throttled

    now = [1000.0]
    lines: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("test.throttled")
    logger.addHandler(Catch())
    logger.setLevel(logging.INFO)
    refusals = Throttled(logger, every=60, clock=lambda: now[0])
    for _ in range(5):
        refusals.note("malformed", "refused a message (%s): %s", "malformed", "not a tagged COSE_Sign1")
    refusals.note("denied", "refused a message (%s): %s", "denied", "no rule gives this")
    now[0] += 61
    refusals.note("malformed", "refused a message (%s): %s", "malformed", "COSE_Sign1 is cut short")
    assert lines == ["refused a message (malformed): not a tagged COSE_Sign1",
                     "refused a message (denied): no rule gives this",
                     "refused a message (malformed): COSE_Sign1 is cut short (and 4 more like it since the last line)"]


async def test_revocation_lists_that_prove_nothing_cost_the_log_a_line_a_minute(
        network: Network, caplog: pytest.LogCaptureFixture) -> None:
    """Anyone may post a revocation list (it proves itself or is ignored): before, each ignored one was a line."""
    import logging

    (ciz,) = await network.start("ciz")
    with caplog.at_level(logging.INFO):
        async with aiohttp.ClientSession() as http:
            for i in range(100):
                async with http.post(ciz.url + "/iwlz/v1/revocations", data=b"junk" * (i + 1)) as r:
                    assert (await r.json()) == {"adopted": False}
    assert len([r for r in caplog.records if "ignored a revocation list" in r.getMessage()]) == 1


async def test_addresses_that_answer_no_announcement_cost_the_log_a_line_a_minute(
        network: Network, caplog: pytest.LogCaptureFixture) -> None:
    """An address from mDNS is anyone's on the LAN to give: each that answered nothing was a warning."""
    import logging
    import socket

    (ciz,) = await network.start("ciz")
    ports = []
    for _ in range(20):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])  # free, and nothing listens there
    with caplog.at_level(logging.INFO):
        for port in ports:
            assert await ciz.discovery.learn_from(f"http://127.0.0.1:{port}", source="mdns") is None
    warned = [r for r in caplog.records if "no announcement from" in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING
