"""Interoperability with pycose, an independent COSE implementation.

pycose 1.1 expects a list and a dict where cbor2 6 decodes a tag's content as
a tuple and a frozendict, so it is handed the untagged array, decoded
separately.
"""

import cbor2
import pytest

pycose = pytest.importorskip("pycose")
from pycose.algorithms import EdDSA  # noqa: E402
from pycose.headers import KID, Algorithm  # noqa: E402
from pycose.keys.curves import Ed25519  # noqa: E402
from pycose.keys.okp import OKPKey  # noqa: E402
from pycose.messages import Sign1Message  # noqa: E402

from keys import cbor, cose  # noqa: E402
from protocol import Query  # noqa: E402
from protocol.envelope import CERT_LABEL  # noqa: E402
from tests.helpers import NOW, Network, seeded  # noqa: E402


def pycose_message(data: bytes) -> Sign1Message:
    tagged = cbor2.loads(data)
    assert tagged.tag == 18
    protected, unprotected, payload, signature = tagged.value
    return Sign1Message.from_cose_obj([protected, dict(unprotected), payload, signature], allow_unknown_attributes=True)


def test_our_envelope_verifies_with_pycose() -> None:
    net = Network()
    alice, bob = net.endpoint(seeded(2), "zorgkantoor"), net.endpoint(seeded(3), "ciz")
    out = alice.send(Query(template="indicatie-by-id", params={}, evidence=(), history=False), to=bob.did, now=NOW)
    msg = pycose_message(out.data)
    msg.key = OKPKey(crv=Ed25519, x=seeded(2).public_key)
    assert msg.verify_signature()
    msg.key = OKPKey(crv=Ed25519, x=seeded(3).public_key)
    assert not msg.verify_signature()


def test_our_certificate_cwt_verifies_with_pycose() -> None:
    net = Network()
    cert = net.certificate(seeded(2), "zorgaanbieder")
    msg = pycose_message(cert)
    msg.key = OKPKey(crv=Ed25519, x=net.root.public_key)
    assert msg.verify_signature()
    claims = cbor2.loads(msg.payload)
    assert claims[2] == seeded(2).did and claims["role"] == "zorgaanbieder"


def test_pycose_made_envelope_verifies_with_ours() -> None:
    net = Network()
    alice, bob = net.endpoint(seeded(2), "zorgkantoor"), net.endpoint(seeded(3), "ciz")
    # Take our payload, but let pycose build the header bytes, the Sig_structure and the signature.
    template = alice.send(Query(template="indicatie-by-id", params={}, evidence=(), history=False), to=bob.did, now=NOW)
    payload = cose.parse_sign1(template.data).payload
    msg = Sign1Message(
        phdr={Algorithm: EdDSA, KID: alice.did.encode(), CERT_LABEL: alice.certificate},
        payload=payload,
    )
    msg.key = OKPKey(crv=Ed25519, d=seeded(2).seed(), x=seeded(2).public_key)
    data = msg.encode()
    # Ed25519 is deterministic and both sides encode deterministically: the bytes are identical.
    assert data == template.data
    incoming = bob.receive(data, now=NOW)
    assert incoming.sender.did == alice.did
    assert incoming.message.template == "indicatie-by-id"


def test_pycose_sig_structure_matches_ours() -> None:
    protected = cbor.encode({1: -8, 4: b"kid"})
    msg = Sign1Message(phdr={Algorithm: EdDSA, KID: b"kid"}, payload=b"payload")
    assert msg.phdr_encoded == protected
    assert msg._create_sig_structure() == cose.sig_structure(protected, b"payload")
