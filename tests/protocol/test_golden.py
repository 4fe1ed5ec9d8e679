"""Golden bytes: the code produces, and accepts, exactly the vectors in tests/vectors/protocol.json."""

import json

import pytest

from keys import Identity, TrustStore, cbor, cose
from protocol import MESSAGE_TYPES, Endpoint
from tests.vectors import generate

VECTORS = json.loads(generate.PATH.read_text())
NUMBER = {name: n for n, (name, _, _) in enumerate(generate.messages(), start=1)}  # ids, traces, nonces


def test_generator_reproduces_every_golden_byte() -> None:
    assert generate.build() == VECTORS


def b_endpoint() -> Endpoint:
    b = Identity.from_seed(bytes.fromhex(VECTORS["b_seed"]))
    return Endpoint(b, bytes.fromhex(VECTORS["b_certificate"]), TrustStore([VECTORS["root_did"]]))


@pytest.mark.parametrize("name", sorted(VECTORS["envelopes"]))
def test_golden_envelope_verifies_and_types(name: str) -> None:
    data = bytes.fromhex(VECTORS["envelopes"][name]["hex"])
    endpoint = b_endpoint()
    cls = MESSAGE_TYPES[name]
    verify = endpoint._verify  # the shared checks; request/reply framing is tested elsewhere
    incoming = verify(data, now=VECTORS["now"], reply=cls.REPLY)
    assert incoming.envelope.type == name
    assert incoming.sender.did == VECTORS["a_did"]
    assert type(incoming.message) is cls


def test_golden_envelope_layout() -> None:
    """The first bytes spell out the structure documented in docs/PROTOCOL.md §3."""
    data = bytes.fromhex(VECTORS["envelopes"]["ack"]["hex"])
    assert data[:2] == bytes.fromhex("d284")  # tag 18, array of 4
    sign1 = cose.parse_sign1(data)
    assert list(sign1.protected) == [1, 4, -65537]
    assert sign1.protected[4] == VECTORS["a_did"].encode()
    assert sign1.unprotected == {}
    payload = cbor.decode(sign1.payload)
    assert list(payload) == ["v", "id", "re", "to", "exp", "iat", "typ", "body", "from", "trace"]
    n = NUMBER["ack"]
    assert payload["id"] == bytes([n]) * 16 and payload["trace"] == f"{n:032x}"
    assert payload["body"] == {"ref": "0b9e1c0e-1d2a-4f5b-9c3d-2e4f6a8b0c1d", "status": "accepted"}


def test_golden_sealed_body_opens_with_the_recipient_key() -> None:
    data = bytes.fromhex(VECTORS["envelopes"]["access-log-request"]["hex"])
    assert b"106658037" not in data
    sealed = cbor.decode(cose.parse_sign1(data).payload)["body"]
    assert sealed[:24] == bytes([NUMBER["access-log-request"]]) * 24  # nonce first
    opened = b_endpoint().boxes.open(VECTORS["a_did"], sealed)
    assert cbor.decode(opened) == {"bsn": "106658037", "since": 0}


def test_golden_certificate_and_revocation_list_verify() -> None:
    trust = TrustStore([VECTORS["root_did"]])
    member = trust.verify_certificate(bytes.fromhex(VECTORS["a_certificate"]), VECTORS["now"])
    assert member.cert_id == bytes([0xA1]) * 16
    assert trust.apply_revocation_list(bytes.fromhex(VECTORS["revocation_list"]))
    assert trust.is_revoked(member.cert_id)
    assert Identity.from_seed(bytes.fromhex(VECTORS["a_seed"])).did == VECTORS["a_did"]


def test_golden_certificate_by_hash_and_held_hint() -> None:
    """Labels -65538 (our certificate's SHA-256) and -65539 (8 bytes of the recipient's we hold)."""
    import hashlib

    from protocol import ErrorCode, RemoteProtocolError

    data = bytes.fromhex(VECTORS["by_hash"])
    sign1 = cose.parse_sign1(data)
    cert_a, cert_b = bytes.fromhex(VECTORS["a_certificate"]), bytes.fromhex(VECTORS["b_certificate"])
    assert list(sign1.protected) == [1, 4, -65538, -65539]
    assert sign1.protected[-65538] == hashlib.sha256(cert_a).digest()
    assert sign1.protected[-65539] == hashlib.sha256(cert_b).digest()[:8]
    bob = b_endpoint()
    with pytest.raises(RemoteProtocolError) as refused:
        bob.receive(data, now=VECTORS["now"])
    assert refused.value.code is ErrorCode.UNKNOWN_CERTIFICATE
    bob.trust.verify_certificate(cert_a, VECTORS["now"])  # as when alice's announcement reached him
    incoming = bob.receive(data, now=VECTORS["now"])
    assert incoming.cert_by_hash and incoming.sender.did == VECTORS["a_did"]
    assert bob.holds_our_certificate(VECTORS["a_did"])
