"""Every verification step of Endpoint.receive, each failure with its own code.

The order is size → decode → signature → certificate → recipient → time → replay.
"""

import pytest

from keys import MalformedData, cbor, cose, sign_revocation_list
from protocol import (
    Ack,
    Announcement,
    Endpoint,
    ErrorCode,
    LocalProtocolError,
    Notification,
    Query,
    QueryResult,
    RemoteProtocolError,
    ReplyTo,
    Subject,
)
from protocol.envelope import CERT_LABEL, MAX_LIFETIME
from tests.helpers import NOW, YEAR, Network, seeded

INDICATIE_ID = "31835d1d-3933-4ffe-9f57-8985f41fae4a"


def query() -> Query:
    return Query(template="indicatie-by-id", params={"wlzIndicatieID": INDICATIE_ID}, evidence=(), history=False)


def refused(endpoint: Endpoint, data: bytes, now: int = NOW) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        endpoint.receive(data, now=now)
    return info.value


def resign(data: bytes, signer_seed: int, mutate_payload=None, mutate_protected=None) -> bytes:
    """Re-sign an envelope after changing it, as an attacker with some key would."""
    sign1 = cose.parse_sign1(data)
    payload = cbor.decode(sign1.payload)
    protected = dict(sign1.protected)
    if mutate_payload:
        mutate_payload(payload)
    if mutate_protected:
        mutate_protected(protected)
    return cose.sign1(seeded(signer_seed), cbor.encode(payload), {k: v for k, v in protected.items() if k != 1})


def test_query_arrives_typed_with_the_senders_claims(alice: Endpoint, bob: Endpoint) -> None:
    out = alice.send(query(), to=bob.did, now=NOW)
    incoming = bob.receive(out.data, now=NOW + 1)
    assert incoming.message == query()
    assert incoming.sender.did == alice.did
    assert incoming.sender.role == "zorgkantoor"
    assert incoming.sender.identifiers == {"uzovi": "5151"}
    assert incoming.envelope.trace_id == out.envelope.trace_id


def test_sealed_body_is_not_readable_on_the_wire(alice: Endpoint, bob: Endpoint) -> None:
    out = alice.send(query(), to=bob.did, now=NOW)
    assert INDICATIE_ID.encode() not in out.data
    assert b"wlzIndicatieID" not in out.data
    payload = cbor.decode(cose.parse_sign1(out.data).payload)
    assert isinstance(payload["body"], bytes)


def test_only_the_recipient_can_open_a_sealed_body(net: Network, alice: Endpoint, bob: Endpoint) -> None:
    eve = net.endpoint(seeded(4), "ciz")
    out = alice.send(query(), to=bob.did, now=NOW)
    # Eve re-addresses the envelope to herself: it verifies up to the body, which she cannot open.
    forged = resign(out.data, 2, mutate_payload=lambda p: p.update(to=eve.did))
    error = refused(eve, forged)
    assert error.code == ErrorCode.MALFORMED
    assert "cannot be opened" in error.reason


def test_reply_is_bound_to_the_request(alice: Endpoint, bob: Endpoint) -> None:
    out = alice.send(query(), to=bob.did, now=NOW)
    incoming = bob.receive(out.data, now=NOW)
    reply = bob.reply(incoming, QueryResult(records=(b"record",)), now=NOW)
    answer = alice.receive_reply(reply.data, out, now=NOW)
    assert answer.message == QueryResult(records=(b"record",))
    assert answer.envelope.reply_to.message_id == out.envelope.message_id
    other = alice.send(query(), to=bob.did, now=NOW)
    with pytest.raises(RemoteProtocolError, match="not bound"):
        alice.receive_reply(reply.data, other, now=NOW)


def test_reply_from_another_node_than_asked_is_refused(net: Network, alice: Endpoint, bob: Endpoint) -> None:
    carol = net.endpoint(seeded(5), "ciz")
    out = alice.send(query(), to=bob.did, now=NOW)
    # Carol saw the request on the wire and binds her own answer to it.
    forged = carol.send(Ack(ref="x", status="accepted"), to=alice.did, now=NOW,
                        reply_to=ReplyTo(out.envelope.message_id, out.digest))
    with pytest.raises(RemoteProtocolError) as info:
        alice.receive_reply(forged.data, out, now=NOW)
    assert info.value.code == ErrorCode.WRONG_RECIPIENT


def test_signed_error_reply_carries_code_and_reason(alice: Endpoint, bob: Endpoint) -> None:
    out = alice.send(query(), to=bob.did, now=NOW)
    bob.receive(out.data, now=NOW)
    error = refused(bob, out.data)
    reply = bob.error_reply(out.data, error, now=NOW)
    answer = alice.receive_reply(reply.data, out, now=NOW)
    assert answer.message.code == "replay"
    assert answer.sender.did == bob.did


def test_oversized_input_is_too_large(alice: Endpoint, bob: Endpoint) -> None:
    assert refused(bob, b"\x00" * (bob.max_size + 1)).code == ErrorCode.TOO_LARGE


@pytest.mark.parametrize("data", [b"", b"\xff", b"\xd2\x80", cbor.encode([1, 2, 3, 4]), cbor.encode(cbor.Tag(18, [b"", {}, b"", b""]))])
def test_undecodable_input_is_malformed(bob: Endpoint, data: bytes) -> None:
    assert refused(bob, data).code == ErrorCode.MALFORMED


def test_deep_nesting_is_malformed(bob: Endpoint) -> None:
    assert refused(bob, b"\x81" * 100 + b"\x01").code == ErrorCode.MALFORMED  # not even a COSE_Sign1 frame
    deep_header = b"\xa1\x01" + b"\x81" * 100 + b"\x01"  # the only part decoded before the signature check
    error = refused(bob, b"\xd2\x84" + cbor.encode(deep_header) + b"\xa0\x40" + cbor.encode(b"s" * 64))
    assert error.code == ErrorCode.MALFORMED
    assert "integers or strings" in error.reason  # refused from its first heads: nothing nested is read


def test_unknown_tag_is_malformed(bob: Endpoint) -> None:
    error = refused(bob, bytes.fromhex("d904d2") + cbor.encode([b"", {}, b"", b""]))
    assert error.code == ErrorCode.MALFORMED
    assert "COSE_Sign1" in error.reason
    error = refused(bob, b"\xd2\x84" + cbor.encode(cbor.encode(cbor.Tag(1234, 1))) + b"\xa0\x40" + cbor.encode(b"s" * 64))
    assert error.code == ErrorCode.MALFORMED and "must be a map" in error.reason
    error = refused(bob, b"\xd2\x84" + cbor.encode(cbor.encode({1: -8, 5: cbor.Tag(1234, 1)})) + b"\xa0\x40" + cbor.encode(b"s" * 64))
    assert error.code == ErrorCode.MALFORMED and "integers or strings" in error.reason


def test_anything_in_the_unprotected_header_is_refused_before_it_is_decoded(alice: Endpoint, bob: Endpoint) -> None:
    sign1 = cose.parse_sign1(alice.send(query(), to=bob.did, now=NOW).data)
    for unprotected in (cbor.encode({4: b"x"}), cbor.encode({1: list(range(100_000))})):
        data = b"\xd2\x84" + cbor.encode(sign1.protected_bytes) + unprotected + cbor.encode(sign1.payload) + cbor.encode(sign1.signature)
        error = refused(bob, data)
        assert error.code == ErrorCode.MALFORMED and "empty map" in error.reason


@pytest.mark.parametrize("extra", [list(range(0, 16_000, 4))[:4000], {i: 0 for i in range(3000)}, [[[[0]]]] * 2000])
def test_a_protected_header_packed_with_items_is_refused_from_its_heads(alice: Endpoint, bob: Endpoint, extra: object,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The protected header is decoded before any signature is checked, by anyone's message. Its labels are few
    and flat (alg, kid, a certificate or its hash, a hint: integers and strings); 16 KiB of small CBOR items in it
    cost ~2-6 ms to decode and check against ~0.06 ms for a signature. Now it is read from its item heads first."""
    sign1 = cose.parse_sign1(alice.send(query(), to=bob.did, now=NOW).data)
    protected = cbor.encode({**sign1.protected, 5: extra})
    assert len(protected) <= 16 * 1024
    decoded: list[int] = []
    real = cbor.decode
    monkeypatch.setattr(cbor, "decode", lambda data, **kw: decoded.append(len(data)) or real(data, **kw))
    error = refused(bob, b"\xd2\x84" + cbor.encode(protected) + b"\xa0" + cbor.encode(sign1.payload) + cbor.encode(sign1.signature))
    assert error.code == ErrorCode.MALFORMED
    assert decoded == []


def test_duplicate_map_key_is_malformed(alice: Endpoint, bob: Endpoint) -> None:
    out = alice.send(query(), to=bob.did, now=NOW)
    sign1 = cose.parse_sign1(out.data)
    # Protected header {1: -8, 4: x, 4: y}: hand-built, since no encoder writes duplicate keys.
    dup = bytes.fromhex("a301270441780441") + b"y"
    data = b"\xd2\x84" + cbor.encode(dup) + b"\xa0" + cbor.encode(sign1.payload) + cbor.encode(sign1.signature)
    error = refused(bob, data)
    assert error.code == ErrorCode.MALFORMED and "duplicate" in error.reason


def test_tampered_payload_is_bad_signature(alice: Endpoint, bob: Endpoint) -> None:
    out = alice.send(query(), to=bob.did, now=NOW)
    sign1 = cose.parse_sign1(out.data)
    payload = cbor.decode(sign1.payload)
    payload["iat"] += 1
    data = cbor.encode(cbor.Tag(18, [sign1.protected_bytes, {}, cbor.encode(payload), sign1.signature]))
    assert refused(bob, data).code == ErrorCode.BAD_SIGNATURE


def test_tampered_protected_header_is_bad_signature(net: Network, alice: Endpoint, bob: Endpoint) -> None:
    out = alice.send(query(), to=bob.did, now=NOW)
    sign1 = cose.parse_sign1(out.data)
    protected = dict(sign1.protected)
    protected[CERT_LABEL] = net.certificate(seeded(2), "zorgaanbieder")  # claim another role
    data = cbor.encode(cbor.Tag(18, [cbor.encode(protected), {}, sign1.payload, sign1.signature]))
    assert refused(bob, data).code == ErrorCode.BAD_SIGNATURE


def test_a_protected_header_seen_before_vouches_for_nothing(alice: Endpoint, bob: Endpoint) -> None:
    """The decoded protected header is kept by its bytes (a sender sends the same ones each time). Attack: take
    alice's header from a message bob accepted, put it over another payload signed with another key."""
    first = alice.send(query(), to=bob.did, now=NOW)
    bob.receive(first.data, now=NOW)
    sign1 = cose.parse_sign1(first.data)
    payload = cbor.decode(sign1.payload)
    payload["id"] = bytes(16)
    forged_payload = cbor.encode(payload)
    forged_signature = seeded(7).sign(cose.sig_structure(sign1.protected_bytes, forged_payload))
    forged = cose.assemble_sign1(sign1.protected_bytes, forged_payload, forged_signature)
    for _ in range(2):
        assert refused(bob, forged).code == ErrorCode.BAD_SIGNATURE
    without_alg = cbor.encode({k: v for k, v in sign1.protected.items() if k != cose.ALG})
    for _ in range(2):
        with pytest.raises(MalformedData, match="EdDSA"):
            cose.parse_sign1(cose.assemble_sign1(without_alg, sign1.payload, sign1.signature))


def test_wrong_key_is_bad_signature(alice: Endpoint, bob: Endpoint) -> None:
    out = alice.send(query(), to=bob.did, now=NOW)
    assert refused(bob, resign(out.data, 7)).code == ErrorCode.BAD_SIGNATURE


def test_certificate_of_another_node_is_bad_certificate(net: Network, alice: Endpoint, bob: Endpoint) -> None:
    out = alice.send(query(), to=bob.did, now=NOW)
    mallory_cert = net.certificate(seeded(8), "zorgkantoor")
    forged = resign(out.data, 2, mutate_protected=lambda h: h.update({CERT_LABEL: mallory_cert}))
    assert refused(bob, forged).code == ErrorCode.BAD_CERTIFICATE


def test_certificate_from_unknown_root_is_unknown_issuer(bob: Endpoint) -> None:
    stranger = Network(root=seeded(9)).endpoint(seeded(2), "zorgkantoor")
    out = stranger.send(query(), to=bob.did, now=NOW)
    assert refused(bob, out.data).code == ErrorCode.UNKNOWN_ISSUER


def test_expired_certificate_is_expired(net: Network, bob: Endpoint) -> None:
    old = net.endpoint(seeded(2), "zorgkantoor", not_before=NOW - 2 * YEAR, expires=NOW - 1)
    assert refused(bob, old.send(query(), to=bob.did, now=NOW).data).code == ErrorCode.EXPIRED


def test_revoked_certificate_is_revoked(net: Network, alice: Endpoint, bob: Endpoint) -> None:
    cert_id = bob.trust.verify_certificate(alice.certificate, NOW).cert_id
    bob.trust.apply_revocation_list(sign_revocation_list(net.root, version=1, revoked=[cert_id], issued_at=NOW))
    assert refused(bob, alice.send(query(), to=bob.did, now=NOW).data).code == ErrorCode.REVOKED


def test_message_for_another_recipient_is_wrong_recipient(net: Network, alice: Endpoint, bob: Endpoint) -> None:
    carol = net.endpoint(seeded(5), "ciz")
    out = alice.send(query(), to=carol.did, now=NOW)
    error = refused(bob, out.data)
    assert error.code == ErrorCode.WRONG_RECIPIENT
    assert error.sender == alice.did


def test_expired_message_is_expired(alice: Endpoint, bob: Endpoint) -> None:
    out = alice.send(query(), to=bob.did, now=NOW, lifetime=60)
    assert bob.receive(out.data, now=NOW + 60 + bob.skew).message == query()
    late = alice.send(query(), to=bob.did, now=NOW, lifetime=60)
    assert refused(bob, late.data, now=NOW + 61 + bob.skew).code == ErrorCode.EXPIRED


def test_message_from_the_future_is_not_yet_valid(alice: Endpoint, bob: Endpoint) -> None:
    out = alice.send(query(), to=bob.did, now=NOW + 3600)
    assert refused(bob, out.data).code == ErrorCode.NOT_YET_VALID


def test_overlong_lifetime_is_malformed(alice: Endpoint, bob: Endpoint) -> None:
    out = alice.send(query(), to=bob.did, now=NOW)
    forged = resign(out.data, 2, mutate_payload=lambda p: p.update(exp=p["iat"] + MAX_LIFETIME + 1))
    assert refused(bob, forged).code == ErrorCode.MALFORMED


def test_replayed_message_id_is_replay(alice: Endpoint, bob: Endpoint) -> None:
    out = alice.send(query(), to=bob.did, now=NOW)
    bob.receive(out.data, now=NOW)
    error = refused(bob, out.data, now=NOW + 5)
    assert error.code == ErrorCode.REPLAY
    assert (error.sender, error.message_id) == (alice.did, out.envelope.message_id)


def test_same_id_from_another_sender_is_not_a_replay(net: Network, alice: Endpoint, bob: Endpoint) -> None:
    carol = net.endpoint(seeded(5), "zorgkantoor")
    mid = b"\x01" * 16
    bob.receive(alice.send(query(), to=bob.did, now=NOW, message_id=mid).data, now=NOW)
    bob.receive(carol.send(query(), to=bob.did, now=NOW, message_id=mid).data, now=NOW)


def test_replay_guard_survives_a_restart(net: Network, alice: Endpoint, bob: Endpoint) -> None:
    out = alice.send(query(), to=bob.did, now=NOW)
    bob.receive(out.data, now=NOW)
    persisted = bob.replay.drain_new()
    restarted = net.endpoint(seeded(3), "ciz")
    restarted.replay.load(persisted)
    assert refused(restarted, out.data).code == ErrorCode.REPLAY


def test_replay_guard_forgets_only_what_the_time_window_refuses(alice: Endpoint, bob: Endpoint) -> None:
    out = alice.send(query(), to=bob.did, now=NOW, lifetime=60)
    bob.receive(out.data, now=NOW)
    assert bob.replay.prune(NOW + 60 + bob.skew) == 0
    assert bob.replay.prune(NOW + 61 + bob.skew) == 1
    assert refused(bob, out.data, now=NOW + 61 + bob.skew).code == ErrorCode.EXPIRED


def test_unknown_message_type_is_unsupported(alice: Endpoint, bob: Endpoint) -> None:
    out = alice.send(query(), to=bob.did, now=NOW)
    assert refused(bob, resign(out.data, 2, mutate_payload=lambda p: p.update(typ="gossip-v9"))).code == ErrorCode.UNSUPPORTED


def test_reply_types_are_not_accepted_as_requests(alice: Endpoint, bob: Endpoint) -> None:
    with pytest.raises(LocalProtocolError):
        alice.send(QueryResult(records=()), to=bob.did, now=NOW)


def test_broadcast_announcement_is_relayable_and_exempt_from_replay(net: Network, alice: Endpoint, bob: Endpoint) -> None:
    carol = net.endpoint(seeded(5), "ciz")
    ann = Announcement(seq=1, endpoints=("http://127.0.0.1:1/",), registers=("bemiddeling",), templates=(), events=())
    out = alice.send(ann, to="*", now=NOW, lifetime=3600)
    assert bob.verify_broadcast(out.data, now=NOW).message == ann
    assert carol.verify_broadcast(out.data, now=NOW + 10).message == ann
    assert bob.receive(out.data, now=NOW).message == ann
    assert bob.receive(out.data, now=NOW).message == ann


def test_non_broadcast_types_cannot_be_sent_to_everyone(alice: Endpoint) -> None:
    with pytest.raises(LocalProtocolError):
        alice.send(query(), to="*", now=NOW)


def test_notification_round_trip_in_clear_has_ids_only(alice: Endpoint, bob: Endpoint) -> None:
    note = Notification(
        notification_id="0b9e1c0e-1d2a-4f5b-9c3d-2e4f6a8b0c1d", event_type="NIEUWE_INDICATIE_ZORGKANTOOR", timestamp=NOW,
        sender_id_type="KVK", sender_id="62253778", receiver_id_type="UZOVI", receiver_id="5151", subscription_id=None,
        subjects=(Subject(subject=f"WlzIndicatie/{INDICATIE_ID}", record_id=f"WlzIndicatie/{INDICATIE_ID}"),),
    )
    out = bob.send(note, to=alice.did, now=NOW)
    assert alice.receive(out.data, now=NOW).message == note
