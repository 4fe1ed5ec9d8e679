"""A hostile member: messages of every type that pass the protocol's own type checks, signed by a member with a valid
certificate, with values chosen at random from what each field could hold: real ids, dids, template and event names,
BSNs, alongside random text, bytes and integers at their bounds. Mutated bytes stop at the signature
(tests/hardening/test_fuzz_http.py); these reach every handler. Each must be answered with a signed reply or a
signed error, never a 5xx, never with an error in the node's log; the audit chain stays intact and the node still
answers a genuine query."""

from __future__ import annotations

import dataclasses
import logging
import random
import types
from typing import Any, Union, get_args, get_origin, get_type_hints

import aiohttp
import pytest

from keys import cbor, cose
from protocol import MEDIA_TYPE, Query
from protocol.messages import MAX_UINT, MESSAGE_TYPES, Message, Part
from tests.hardening.forge import forge
from tests.helpers import served
from tests.node.kit import IND0, Network, put, sample
from tests.vectors.generate import messages

pytestmark = pytest.mark.asyncio
PER_TYPE = 40  # messages of each type, for each sender and receiver


class Values:
    """Random field values: half of them what a real message would hold, so that handlers get past their first
    check; the rest anything of the field's type."""

    def __init__(self, rng: random.Random, real: list[str]) -> None:
        self.rng, self.real = rng, real

    def text(self) -> str:
        rng = self.rng
        choice = rng.random()
        if choice < 0.5:
            return rng.choice(self.real)
        if choice < 0.6:
            return ""
        if choice < 0.7:
            return rng.choice(self.real) + rng.choice(["/", ":", "..", "\x00", "\n", "%", "'", " OR 1=1", "*"]) + rng.choice(self.real)
        alphabet = "abcXYZ019-_/:.\x00\t\n é\u202e\U0001f600"
        return "".join(rng.choice(alphabet) for _ in range(rng.choice([1, 5, 40, 1000, 4000])))

    def integer(self) -> int:
        return self.rng.choice([0, 1, 59, 2**31, 2**32 + 1, 2**53 + 1, MAX_UINT, self.rng.randrange(MAX_UINT)])

    def value(self, tp: Any, depth: int = 0) -> Any:
        rng = self.rng
        origin = get_origin(tp)
        if tp is Any:
            return rng.choice([None, 1, self.text(), b"\x00", [self.text()], {self.text(): self.text()}])
        if origin in (Union, types.UnionType):
            (inner,) = [a for a in get_args(tp) if a is not type(None)]
            return None if rng.random() < 0.3 else self.value(inner, depth)
        if origin is tuple:
            return [self.value(get_args(tp)[0], depth + 1) for _ in range(rng.choice([0, 1, 1, 2, 3] if depth < 2 else [0, 1]))]
        if origin is dict:
            names = ["wlzIndicatieID", "bsn", "uzovi", "kind", "id", "agb", "kvk", "bemiddelingID", "since"]
            return {rng.choice(names) if rng.random() < 0.8 else self.text(): self.value(get_args(tp)[1], depth + 1)
                    for _ in range(rng.choice([0, 1, 2, 3]))}
        if isinstance(tp, type) and issubclass(tp, Part):
            return body(tp, self, depth + 1)
        if tp is bool:
            return rng.random() < 0.5
        if tp is int:
            return self.integer()
        if tp is bytes:
            return rng.choice([b"", rng.randbytes(rng.choice([1, 16, 32, 64, 300]))])
        return self.text()


def body(cls: type[Part], values: Values, depth: int = 0) -> dict[str, Any]:
    hints = get_type_hints(cls)
    return {f.name: values.value(hints[f.name], depth) for f in dataclasses.fields(cls)}


def near(message: Part, values: Values) -> dict[str, Any]:
    """A valid message's body with one field, at any depth, given another value of its type: most get past the
    first checks and into the handlers."""
    out = message.to_cbor()
    hints = get_type_hints(type(message))
    fields = [f.name for f in dataclasses.fields(message)]
    name = values.rng.choice(fields)
    inner = getattr(message, name)
    if isinstance(inner, Part) and values.rng.random() < 0.7:
        out[name] = near(inner, values)
    elif isinstance(inner, tuple) and inner and isinstance(inner[0], Part) and values.rng.random() < 0.7:
        items = list(out[name])
        i = values.rng.randrange(len(items))
        items[i] = near(inner[i], values)
        out[name] = items
    else:
        out[name] = values.value(hints[name])
    return out


async def test_type_valid_messages_with_random_values_get_signed_answers_and_break_nothing(
        network: Network, caplog: pytest.LogCaptureFixture) -> None:
    ciz, zk, client = await network.start("ciz", "zk5151", "client")
    await put(ciz, "WlzIndicatie", sample("wlzIndicaties", 0))
    dids = [n.identity.did for n in (ciz, zk, client)]
    real = [IND0, f"WlzIndicatie/{IND0}", "WlzIndicatie", "QIR-0001-ZKi", "RECORD-STATUS", "CLIENT-EIGEN-GEGEVENS",
            "NIEUWE_INDICATIE_ZORGKANTOOR", "GEWIJZIGDE_INDICATIE", "106658037", "5151", "62253778", "12345678",
            "UZOVI", "KVK", "AGB", "BSN", "0b9e1c0e-1d2a-4f5b-9c3d-2e4f6a8b0c1d", ciz.url, *dids]
    values = Values(random.Random(20261206), real)
    requests = [cls for cls in MESSAGE_TYPES.values() if not cls.REPLY and cls.TYPE != "error"]
    golden = messages()
    pairs = [(zk, ciz), (client, ciz), (ciz, zk)]
    statuses: dict[int, int] = {}
    caplog.set_level(logging.DEBUG)
    async with aiohttp.ClientSession() as http:
        for sender, receiver in pairs:
            for cls in requests:
                for _ in range(PER_TYPE):
                    await _send_one(http, cls, body(cls, values), values, sender, receiver, statuses)
            for name, message, reply in golden:
                if not reply and not type(message).REPLY and name != "error":
                    for _ in range(PER_TYPE):
                        await _send_one(http, type(message), near(message, values), values, sender, receiver, statuses)
        # The node still does its work: a genuine query is answered with the record. (Sent straight to its URL: the
        # fuzz had ciz announce other endpoints of its own, signed with its own key, which zk believed.)
        query = Query(template="QIR-0001-ZKi", params={"wlzIndicatieID": IND0, "uzovi": "5151"}, evidence=(), history=False)
        request = zk.endpoint.send(query, to=ciz.identity.did, now=ciz.now())
        async with http.post(ciz.url + "/iwlz/v1/messages", data=request.data, headers={"Content-Type": MEDIA_TYPE}) as r:
            answer = zk.endpoint.receive_reply(await r.read(), request, now=ciz.now()).message
        assert type(answer).__name__ == "QueryResult" and len(answer.records) == 1
    assert all(status < 500 for status in statuses), statuses
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == [], [r.getMessage() for r in errors[:5]]
    # What a peer sent never reaches a log line as it was sent: no line break, control or bidi character that could
    # forge or hide a line, and no BSN (the sender put one in every kind of field).
    lines = [r.getMessage() for r in caplog.records]
    assert [line for line in lines if any(c in line for c in "\n\r\x00\t\u202e")] == []
    assert [line for line in lines if "106658037" in line] == []
    for node in (ciz, zk, client):
        assert (await node.audit.verify(full=True))[0]


async def _send_one(http: aiohttp.ClientSession, cls: type[Message], content: dict[str, Any], values: Values, sender: Any,
                    receiver: Any, statuses: dict[int, int]) -> None:
    to = "*" if cls.BROADCAST else receiver.identity.did
    now = receiver.now()
    data = forge(sender.endpoint, cls.TYPE, content, to=to, now=now, sealed=cls.SEALED,
                 exp=now + (3600 if cls.BROADCAST else 60))
    async with http.post(receiver.url + "/iwlz/v1/messages", data=data, headers={"Content-Type": MEDIA_TYPE}) as r:
        statuses[r.status] = statuses.get(r.status, 0) + 1
        answer = await r.read()
        assert r.status < 500, (cls.TYPE, r.status, answer[:200])
        if r.status in (200, 400, 403, 404, 409, 422):
            signed = cose.parse_sign1(answer)  # a signed reply or a signed error, from the receiver
            assert cbor.decode(signed.payload)["from"] == receiver.identity.did


async def test_a_hostile_receivers_refusal_reaches_no_log_as_it_was_written(network: Network) -> None:
    """The other way round: a member answers with a signed error whose reason and rule hold line breaks, NUL and
    bidi characters. The node turns it into PeerRefused, whose text its outbox and discovery log: written out as
    escapes there, and bounded."""
    from aiohttp import web

    from node.errors import PeerRefused
    from protocol import Error

    ciz, zk = await network.start("ciz", "zk5151")
    nasty = "refused\n2026-12-06 WARNING forged line\r\x00\u202e\u2028" + "x" * 4000

    async def hostile(request: web.Request) -> web.Response:
        incoming = zk.endpoint.receive(await request.read(), now=zk.now())
        answer = zk.endpoint.reply(incoming, Error(code="denied", reason=nasty, rule="R\nforged"), now=zk.now())
        return web.Response(body=answer.data, content_type=MEDIA_TYPE)

    app = web.Application()
    app.router.add_post("/iwlz/v1/messages", hostile)
    query = Query(template="QIR-0001-ZKi", params={"wlzIndicatieID": IND0, "uzovi": "5151"}, evidence=(), history=False)
    async with served(app) as url:
        with pytest.raises(PeerRefused) as refused:
            await ciz.client.request(url, query, to=zk.identity.did)
    text = str(refused.value)
    assert not any(c in text for c in "\n\r\x00\u202e\u2028"), text[:200]
    assert "refused\\u000a2026-12-06 WARNING forged line" in text and len(text) < 700
    assert refused.value.code == "denied" and "\n" not in (refused.value.rule or "")


async def test_a_hostile_sources_refusals_in_a_batch_reach_no_log_as_they_were_written(network: Network,
                                                                                      monkeypatch: Any) -> None:
    """The same reason and rule, in the answers to a batch of queries (a receiver fetching back what a batch of
    notifications is about): the refusals become the inbox's detail, shown on the beheer page and logged."""
    from aiohttp import web

    from protocol import Answer, Answers, Error, Queries

    ciz, zk = await network.start("ciz", "zk5151")
    nasty = "refused\n2026-12-06 WARNING forged line\r\x00\u202e\u2028" + "x" * 4000

    async def hostile(request: web.Request) -> web.Response:
        incoming = zk.endpoint.receive(await request.read(), now=zk.now())
        assert isinstance(incoming.message, Queries)
        refusal = Answer(records=(), evidence=(), error=Error(code="denied", reason=nasty, rule="R\nforged"))
        answer = zk.endpoint.reply(incoming, Answers(answers=(refusal,) * len(incoming.message.queries)), now=zk.now())
        return web.Response(body=answer.data, content_type=MEDIA_TYPE)

    app = web.Application()
    app.router.add_post("/iwlz/v1/messages", hostile)
    async with served(app) as url:
        async def at_the_hostile_server(target: str) -> tuple[str, str]:
            return url, zk.identity.did

        monkeypatch.setattr(ciz.router, "peer_for", at_the_hostile_server)
        asked = [("QIR-0001-ZKi", {"wlzIndicatieID": IND0, "uzovi": "5151"}, [])] * 2
        outcomes = await ciz.router.query_many(zk.identity.did, asked)
    assert len(outcomes) == 2
    for outcome in outcomes:
        text = str(outcome)
        assert not any(c in text for c in "\n\r\x00\u202e\u2028"), text[:200]
        assert "refused\\u000a2026-12-06 WARNING forged line" in text and len(text) < 700
        assert getattr(outcome, "code", None) == "denied" and "\n" not in (getattr(outcome, "rule", None) or "")
