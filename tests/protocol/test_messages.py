"""Typed messages: round trips, strict shapes, and the decoder's fuzz invariant."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import MESSAGE_TYPES, Endpoint, ErrorCode, LocalProtocolError, RemoteProtocolError
from protocol import codec
from tests.helpers import NOW, Network, seeded
from tests.vectors.generate import messages

ALL = messages()
_BODY = {name: message.to_cbor() for name, message, _ in ALL}
_NOTE = _BODY["notifications"]["notifications"][0]
_QUERY = _BODY["queries"]["queries"][0]


@pytest.mark.parametrize("name,message,_", ALL, ids=[m[0] for m in ALL])
def test_every_message_type_round_trips(name: str, message, _) -> None:
    body = codec.decode(codec.encode(message.to_cbor()))
    assert type(message).from_cbor(body) == message
    assert MESSAGE_TYPES[name] is type(message)


def test_every_message_type_has_a_golden_vector() -> None:
    assert {m[0] for m in ALL} == set(MESSAGE_TYPES)


@pytest.mark.parametrize("name,message,_", ALL, ids=[m[0] for m in ALL])
def test_unknown_and_missing_keys_are_refused(name: str, message, _) -> None:
    body = message.to_cbor()
    with pytest.raises(RemoteProtocolError, match="unknown keys"):
        type(message).from_cbor({**body, "extra": 1})
    with pytest.raises(RemoteProtocolError, match="missing"):
        type(message).from_cbor({k: v for k, v in list(body.items())[1:]})


@pytest.mark.parametrize(
    "cls,body",
    [
        ("notification", {"event_type": "ONBEKEND_EVENT"}),
        ("notification", {"notification_id": "not-a-uuid"}),
        ("notification", {"subjects": []}),
        ("notification", {"receiver_id_type": "IBAN"}),
        ("ack", {"status": "maybe"}),
        ("melding", {"event_type": "NIEUWE_INDICATIE_ZORGKANTOOR"}),
        ("error", {"code": "teapot"}),
        ("subscribe", {"events": []}),
        ("query", {"template": "drop table"}),
        ("announcement", {"endpoints": ["ftp://x"]}),
        ("notifications", {"notifications": []}),
        ("notifications", {"notifications": [_NOTE, _NOTE]}),  # one notification twice
        ("notifications", {"notifications": [{**_NOTE, "notification_id": f"{n:08x}-0000-4000-8000-000000000000"}
                                             for n in range(65)]}),
        ("notifications", {"notifications": [{**_NOTE, "receiver_id_type": "IBAN"}]}),  # each is checked as if alone
        ("receipts", {"receipts": []}),
        ("receipts", {"receipts": [{"ref": "x", "status": "refused", "code": None, "reason": None}]}),
        ("receipts", {"receipts": [{"ref": "x", "status": "accepted", "code": "denied", "reason": "no"}]}),
        ("receipts", {"receipts": [{"ref": "x", "status": "refused", "code": "teapot", "reason": "no"}]}),
        ("queries", {"queries": []}),
        ("queries", {"queries": [{**_QUERY, "template": "drop table"}]}),
        ("peer-exchange-result", {"held": -1}),
        ("peer-exchange-result", {"held": "many"}),
        ("answers", {"answers": []}),
        ("answers", {"answers": [{"records": [b"x"], "evidence": [], "error": {"code": "denied", "reason": "no", "rule": None}}]}),
        ("answers", {"answers": [{"records": [], "evidence": [], "error": {"code": "teapot", "reason": "no", "rule": None}}]}),
    ],
)
def test_semantic_checks_refuse_bad_values(cls: str, body: dict) -> None:
    (message,) = [m for name, m, _ in ALL if name == cls]
    with pytest.raises(RemoteProtocolError) as info:
        type(message).from_cbor({**message.to_cbor(), **body})
    assert info.value.code == ErrorCode.MALFORMED


def test_an_answer_of_an_earlier_version_without_held_is_read_and_says_nothing_of_the_size() -> None:
    """Nodes upgrade one by one: a peer-exchange-result without ``held`` (as a node of an earlier version
    sends it) is read, and its size is not guessed. Any other key still has to be there."""
    (result,) = [m for name, m, _ in ALL if name == "peer-exchange-result"]
    assert result.held == 250 and result.to_cbor()["held"] == 250
    earlier = {k: v for k, v in result.to_cbor().items() if k != "held"}
    read = type(result).from_cbor(codec.decode(codec.encode(earlier)))
    assert read.held is None and read.announcements == result.announcements
    assert "held" not in read.to_cbor()  # None is left out, never sent as null
    with pytest.raises(RemoteProtocolError, match="missing"):
        type(result).from_cbor({k: v for k, v in earlier.items() if k != "summary"})
    with pytest.raises(RemoteProtocolError, match="unknown keys"):
        type(result).from_cbor({**earlier, "size": 250})


def test_pinned_heads_are_asked_for_and_carried_only_when_named() -> None:
    """``since`` and ``pinned`` (witnesses keep pinned heads) are left out when None: the golden vectors of both
    messages are what they were, and a receipt carries at most MAX_PINS heads."""
    from protocol import MAX_PINS, AuditHead, WitnessQuery, WitnessReceipt

    (query,) = [m for name, m, _ in ALL if name == "witness-query"]
    (receipt,) = [m for name, m, _ in ALL if name == "witness-receipt"]
    assert "since" not in query.to_cbor() and "pinned" not in receipt.to_cbor()
    asked = WitnessQuery(node=query.node, since=7)
    assert asked.to_cbor() == {"node": query.node, "since": 7}
    assert WitnessQuery.from_cbor(codec.decode(codec.encode(asked.to_cbor()))) == asked
    head = AuditHead(seq=7, hash=b"\x07" * 32, signature=b"\x08" * 64)
    carried = WitnessReceipt(node=receipt.node, head=receipt.head, at=receipt.at, pinned=(head,))
    assert WitnessReceipt.from_cbor(codec.decode(codec.encode(carried.to_cbor()))) == carried
    with pytest.raises(RemoteProtocolError, match="at most"):
        WitnessReceipt.from_cbor({**carried.to_cbor(), "pinned": [head.to_cbor()] * (MAX_PINS + 1)})


def test_local_construction_is_checked_too() -> None:
    (ack,) = [m for name, m, _ in ALL if name == "ack"]
    with pytest.raises(LocalProtocolError):
        type(ack)(ref="x", status="maybe")


def test_protocol_error_is_abstract() -> None:
    from protocol import ProtocolError

    with pytest.raises(TypeError):
        ProtocolError("malformed", "x")


@pytest.fixture(scope="module")
def receiver() -> Endpoint:
    return Network().endpoint(seeded(3), "ciz")


@given(st.binary(max_size=600))
def test_any_bytes_give_a_message_or_a_protocol_error(receiver: Endpoint, data: bytes) -> None:
    try:
        receiver.receive(data, now=NOW)
    except RemoteProtocolError as exc:
        assert exc.code in set(ErrorCode)


@given(st.data())
def test_mutated_envelopes_give_a_message_or_a_protocol_error(receiver: Endpoint, data: st.DataObject) -> None:
    sender = Network().endpoint(seeded(2), "zorgkantoor")
    name, message, is_reply = data.draw(st.sampled_from(ALL))
    if is_reply or message.BROADCAST:
        return
    raw = bytearray(sender.send(message, to=receiver.did, now=NOW).data)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    try:
        receiver.receive(bytes(raw), now=NOW)
    except RemoteProtocolError as exc:
        assert exc.code in set(ErrorCode)


HOSTILE = "Jansen 106658037\n[INFO] forged line \u202e\x00"


@pytest.mark.parametrize("check,good", [("check_uuid", "31835d1d-3933-4ffe-9f57-8985f41fae4a"), ("check_name", "QIR-0001-ZKi")])
def test_an_id_or_name_with_a_line_break_after_it_is_refused(check: str, good: str) -> None:
    """``$`` matches before a final line break: "id\\n" passed as an id, and reached the log in reasons."""
    from protocol import messages

    getattr(messages, check)(good, "x")
    for bad in (good + "\n", good + "\r\n", "\n" + good):
        with pytest.raises(LocalProtocolError):
            getattr(messages, check)(bad, "x")


def test_a_reason_never_names_back_what_a_peer_sent() -> None:
    """Reasons go into the receiver's log: a peer's text there could forge or hide a line, or be personal data."""
    query = {**_QUERY, "params": {**_QUERY["params"], HOSTILE: 7}}
    subscribe = {**_BODY["subscribe"], "events": ["NIEUWE_INDICATIE_ZORGKANTOOR", HOSTILE]}
    for cls, body in ((MESSAGE_TYPES["queries"], {**_BODY["queries"], "queries": [query]}),
                      (MESSAGE_TYPES["subscribe"], subscribe),
                      (MESSAGE_TYPES["subscribe"], {**_BODY["subscribe"], HOSTILE: 1})):
        with pytest.raises(RemoteProtocolError) as refused:
            cls.from_cbor(codec.decode(codec.encode(body)))
        assert "106658037" not in refused.value.reason and "\n" not in refused.value.reason
    assert refused.value.reason == "Subscribe: unknown keys (known: ['bsn', 'bsn_key', 'endpoint', 'events', 'machtiging'])"


@pytest.mark.parametrize("url,ok", [
    ("http://127.0.0.1:8700", True), ("https://ciz.example.nl/iwlz", True), ("http://[::1]:8700/", True),
    ("http://iwlz_ciz:8700", True), ("http://xn--bcher-kva.example", True),
    ("http://127.0.0.1:8700\n2026-12-06 WARNING forged", False), ("http://a\x00b", False), ("http://a b", False),
    ("http://bücher.example", False), ("http://", False), ("http://:80", False), ("http://[::1", False),
    ("ftp://example.nl", False), ("http://a/" + "x" * 2048, False), ("http://a\u202e", False),
    ("http://10.0.0.5/admin/delete?id=7&x=", False), ("http://10.0.0.5/admin#", False), ("http://a/?", False),
    ("http://user:secret@ciz.example", False), ("http://ciz.example@10.0.0.5", False),
])
def test_an_endpoint_is_a_url_a_node_can_call_and_log(url: str, ok: bool) -> None:
    """Only the scheme was checked: a member could announce, or subscribe with, an endpoint holding a line break."""
    from protocol.messages import check_url

    if ok:
        check_url(url, "endpoint")
    else:
        with pytest.raises(LocalProtocolError, match="^malformed: endpoint must be an http\\(s\\) URL$"):
            check_url(url, "endpoint")


def test_a_subscription_bsn_is_nine_ascii_digits() -> None:
    body = {**_BODY["subscribe"], "bsn": "\u0661" * 9}  # Arabic-Indic digits: str.isdigit() says yes
    with pytest.raises(RemoteProtocolError, match="bsn must be 9 digits"):
        MESSAGE_TYPES["subscribe"].from_cbor(codec.decode(codec.encode(body)))



def test_a_clients_bsn_key_goes_only_with_what_names_his_bsn() -> None:
    """Whoever holds the key can test a BSN against his certificate: it goes only where his BSN goes anyway."""
    from protocol import AccessLogRequest, Melding, Query, Subscribe, with_bsn_key

    key, bsn = bytes(range(32)), "106658037"
    own = Query(template="CLIENT-EIGEN-GEGEVENS", params={"bsn": bsn}, evidence=(), history=False)
    assert with_bsn_key(own, bsn, key).bsn_key == key
    for other in (Query(template="ZORGAANBOD", params={}, evidence=(), history=False),
                  Query(template="GEGEVENS-MET-TOESTEMMING", params={"bsn": "737459086", "doel": "x"}, evidence=(),
                        history=False),
                  Subscribe(events=("NIEUWE_INDICATIE_ZORGKANTOOR",), bsn=None, endpoint=None)):
        assert with_bsn_key(other, bsn, key) == other
    assert with_bsn_key(AccessLogRequest(bsn=bsn, since=0), bsn, key).bsn_key == key
    assert with_bsn_key(Subscribe(events=("NIEUWE_INDICATIE_ZORGKANTOOR",), bsn=bsn, endpoint="http://a"), bsn, key).bsn_key == key
    melding = Melding(melding_id="0f0e5d3c-1b2a-4c9d-8e7f-6a5b4c3d2e1f", event_type="IWLZFOUTMELDING", rule="R",
                      record="WlzIndicatie/31835d1d-3933-4ffe-9f57-8985f41fae4a", description="d")
    assert with_bsn_key(melding, bsn, key).bsn_key == key
    # Without it, a message is the bytes it was (the golden vectors hold); a key of another length is refused.
    assert "bsn_key" not in own.to_cbor() and with_bsn_key(own, bsn, key).to_cbor()["bsn_key"] == key
    with pytest.raises(RemoteProtocolError, match="32 bytes"):
        AccessLogRequest.from_cbor({"bsn": bsn, "since": 0, "bsn_key": b"x" * 31})
