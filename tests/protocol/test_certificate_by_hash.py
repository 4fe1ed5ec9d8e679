"""Certificates named by hash once the other side holds them (labels -65538 and -65539)."""

import hashlib

import pytest

from keys import cbor, cose, sign_revocation_list
from protocol import Announcement, Endpoint, ErrorCode, Query, QueryResult, RemoteProtocolError
from protocol.envelope import CERT_HASH_LABEL, CERT_LABEL, HELD_LABEL
from tests.helpers import NOW, Network, seeded


def query() -> Query:
    return Query(template="indicatie-by-id", params={"wlzIndicatieID": "31835d1d-3933-4ffe-9f57-8985f41fae4a"},
                 evidence=(), history=False)


def labels(data: bytes) -> list[int | str]:
    return list(cose.parse_sign1(data).protected)


def round_trip(a: Endpoint, b: Endpoint, now: int = NOW) -> tuple[bytes, bytes]:
    out = a.send(query(), to=b.did, now=now)
    reply = b.reply(b.receive(out.data, now=now), QueryResult(records=()), now=now)
    a.receive_reply(reply.data, out, now=now)
    return out.data, reply.data


def test_first_contact_carries_the_certificate_and_later_ones_its_hash(alice: Endpoint, bob: Endpoint) -> None:
    first, first_reply = round_trip(alice, bob)
    assert CERT_LABEL in labels(first) and HELD_LABEL not in labels(first)  # alice holds nothing of bob yet
    assert CERT_LABEL in labels(first_reply) and HELD_LABEL in labels(first_reply)  # bob holds alice's now
    second, second_reply = round_trip(alice, bob)
    assert labels(second) == [1, 4, CERT_HASH_LABEL, HELD_LABEL]
    assert labels(second_reply) == [1, 4, CERT_HASH_LABEL, HELD_LABEL]
    assert len(first) - len(second) > 300  # the certificate is ~400 bytes, its hash 32


def test_holding_a_peers_announcement_is_enough_for_it_to_answer_by_hash(alice: Endpoint, bob: Endpoint) -> None:
    announcement = Announcement(seq=1, endpoints=("http://127.0.0.1:1/",), registers=(), templates=(), events=())
    alice.verify_broadcast(bob.send(announcement, to="*", now=NOW, lifetime=3600).data, now=NOW)
    out = alice.send(query(), to=bob.did, now=NOW)
    assert cose.parse_sign1(out.data).protected[HELD_LABEL] == hashlib.sha256(bob.certificate).digest()[:8]
    reply = bob.reply(bob.receive(out.data, now=NOW), QueryResult(records=()), now=NOW)
    assert CERT_HASH_LABEL in labels(reply.data)
    assert alice.receive_reply(reply.data, out, now=NOW).cert_by_hash


def test_broadcasts_always_carry_the_whole_certificate(alice: Endpoint, bob: Endpoint) -> None:
    round_trip(alice, bob)
    announcement = Announcement(seq=1, endpoints=("http://127.0.0.1:1/",), registers=(), templates=(), events=())
    assert labels(alice.send(announcement, to="*", now=NOW, lifetime=3600).data) == [1, 4, CERT_LABEL]


def test_an_unknown_hash_is_refused_with_its_own_code_and_changes_nothing(net: Network, alice: Endpoint, bob: Endpoint) -> None:
    round_trip(alice, bob)
    forgetful = Endpoint(bob.identity, bob.certificate, net.trust())  # bob restarted: his cache is empty
    data = alice.send(query(), to=bob.did, now=NOW).data
    with pytest.raises(RemoteProtocolError) as info:
        forgetful.receive(data, now=NOW)
    assert info.value.code is ErrorCode.UNKNOWN_CERTIFICATE
    assert len(forgetful.replay) == 0
    error = forgetful.error_reply(data, info.value, now=NOW)
    assert CERT_LABEL in labels(error.data)  # errors always carry the certificate
    # Sent whole, as the client does after that error, it is accepted.
    alice.forget_holder(bob.did)
    assert forgetful.receive(alice.send(query(), to=bob.did, now=NOW).data, now=NOW).sender.did == alice.did


def test_a_restarted_peer_says_so_and_gets_whole_certificates_again(net: Network, alice: Endpoint, bob: Endpoint) -> None:
    round_trip(alice, bob)
    restarted = Endpoint(alice.identity, alice.certificate, net.trust())
    out = restarted.send(query(), to=bob.did, now=NOW)
    assert labels(out.data) == [1, 4, CERT_LABEL]  # no held hint: it holds nothing of bob
    reply = bob.reply(bob.receive(out.data, now=NOW), QueryResult(records=()), now=NOW)
    assert CERT_LABEL in labels(reply.data)
    restarted.receive_reply(reply.data, out, now=NOW)


def test_a_revoked_certificate_is_refused_by_hash_too(net: Network, alice: Endpoint, bob: Endpoint) -> None:
    round_trip(alice, bob)
    cert_id = bob.trust.verify_certificate(alice.certificate, NOW).cert_id
    bob.trust.apply_revocation_list(sign_revocation_list(net.root, version=1, revoked=[cert_id], issued_at=NOW))
    data = alice.send(query(), to=bob.did, now=NOW).data
    assert CERT_HASH_LABEL in labels(data)
    with pytest.raises(RemoteProtocolError) as info:
        bob.receive(data, now=NOW)
    assert info.value.code is ErrorCode.REVOKED


@pytest.mark.parametrize("change", ["both", "short-hash", "text-hash"])
def test_a_malformed_certificate_reference_is_bad_certificate(alice: Endpoint, bob: Endpoint, change: str) -> None:
    round_trip(alice, bob)
    sign1 = cose.parse_sign1(alice.send(query(), to=bob.did, now=NOW).data)
    protected = {k: v for k, v in sign1.protected.items() if k != 1}
    if change == "both":
        protected[CERT_LABEL] = alice.certificate
    elif change == "short-hash":
        protected[CERT_HASH_LABEL] = protected[CERT_HASH_LABEL][:16]
    else:
        protected[CERT_HASH_LABEL] = "abc"
    data = cose.sign1(seeded(2), cbor.encode(cbor.decode(sign1.payload)), protected)
    with pytest.raises(RemoteProtocolError) as info:
        bob.receive(data, now=NOW)
    assert info.value.code is ErrorCode.BAD_CERTIFICATE
