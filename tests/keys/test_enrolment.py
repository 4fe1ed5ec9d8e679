"""Join tokens and enrolment requests: who could produce one that is accepted?"""

from __future__ import annotations

import pytest

from keys import CLIENT_ORGANISATION, BsnCommitment, Identity, cbor, cose, parse_certificate
from keys.certificate import issue_certificate
from keys.enrolment import (
    EnrolmentRefused,
    issue_enrolment_token,
    read_enrolment_token,
    sign_enrolment_request,
    token_bytes,
    token_text,
    verify_enrolment_request,
)

NOW = 1_800_000_000
BSN_KEY = bytes(range(32))
ROOT = Identity.from_seed(b"r" * 32)
NODE = Identity.from_seed(b"n" * 32)


def token(role: str = "zorgaanbieder", *, root: Identity = ROOT, reusable: bool = True, expires: int = NOW + 3600,
          identifiers: dict[str, str] | None = None) -> bytes:
    return issue_enrolment_token(root, network="test", role=role, issued_at=NOW - 10, expires=expires,
                                 token_id=b"t" * 16, reusable=reusable, identifiers=identifiers)


def request(tok: bytes, *, identity: Identity = NODE, role: str = "zorgaanbieder", ids: dict[str, str] | None = None,
            at: int = NOW, organisation: str | None = None) -> bytes:
    organisation = organisation or (CLIENT_ORGANISATION if role == "client" else "Zorg BV")
    return sign_enrolment_request(identity, token=tok, organisation=organisation, role=role,
                                  identifiers=ids if ids is not None else {"agb": "98000001"}, region="5151",
                                  vestigingen=(), issued_at=at, bsn_key=BSN_KEY if role == "client" else None)


def refused(data: bytes, reason: str, *, now: int = NOW) -> None:
    with pytest.raises(EnrolmentRefused, match=reason):
        verify_enrolment_request(data, root=ROOT.did, now=now)


def test_a_genuine_request_names_the_key_role_and_identity() -> None:
    asked = verify_enrolment_request(request(token()), root=ROOT.did, now=NOW)
    assert (asked.subject, asked.role, dict(asked.identifiers), asked.region) == (NODE.did, "zorgaanbieder",
                                                                                  {"agb": "98000001"}, "5151")
    assert asked.token.reusable and asked.token.network == "test"


def test_the_token_travels_as_one_line_of_text() -> None:
    data = token()
    text = token_text(data)
    assert "\n" not in text and token_bytes(text + "\n") == data
    with pytest.raises(EnrolmentRefused):
        token_bytes("not-a-token")


def test_a_token_of_another_root_is_refused() -> None:
    refused(request(token(root=Identity.from_seed(b"x" * 32))), "another network root")


def test_a_token_whose_claims_were_edited_does_not_verify() -> None:
    sign1 = cose.parse_sign1(token(role="zorgaanbieder"))
    claims = cbor.decode(sign1.payload)
    claims["role"] = "ciz"  # a zorgaanbieder's token made into a CIZ's
    forged = cose.assemble_sign1(sign1.protected_bytes, cbor.encode(claims), sign1.signature)
    with pytest.raises(EnrolmentRefused, match="signature does not verify"):
        read_enrolment_token(forged)
    refused(request(forged, role="ciz", ids={"kvk": "62253778"}), "signature")


def test_an_expired_token_is_refused() -> None:
    refused(request(token(expires=NOW - 1)), "expired")


def test_a_token_for_one_role_does_not_enrol_another() -> None:
    refused(request(token("zorgaanbieder"), role="ciz", ids={"kvk": "62253778"}), "not a ciz")


def test_a_bound_token_enrols_only_its_identity() -> None:
    tok = token(identifiers={"agb": "12345678"})
    refused(request(tok, ids={"agb": "87654321"}), "another identity")
    assert verify_enrolment_request(request(tok, ids={"agb": "12345678"}), root=ROOT.did, now=NOW).identifiers == {
        "agb": "12345678"}


def test_a_request_signed_by_another_key_than_it_names_is_refused() -> None:
    genuine = cose.parse_sign1(request(token()))
    payload = cbor.decode(genuine.payload)
    payload["sub"] = Identity.from_seed(b"v" * 32).did  # the victim's key, signed by the attacker
    forged = cose.sign1(NODE, cbor.encode(payload), {cose.KID: payload["sub"].encode("ascii")})
    refused(forged, "did not sign it")


def test_an_old_request_cannot_be_replayed() -> None:
    refused(request(token(), at=NOW - 301), "not fresh")


def test_a_client_sends_a_commitment_never_his_bsn() -> None:
    data = request(token("client"), role="client", ids={"bsn": "106658037"})
    assert b"106658037" not in data
    asked = verify_enrolment_request(data, root=ROOT.did, now=NOW)
    cert = issue_certificate(ROOT, subject=NODE.did, organisation=asked.organisation, role="client", identifiers={},
                             not_before=NOW, expires=NOW + 60, issued_at=NOW, bsn_commitment=asked.bsn_commitment)
    member = parse_certificate(cert)[1]
    assert member.matches_bsn("106658037", BSN_KEY) and not member.matches_bsn("999999990", BSN_KEY)
    assert not member.matches_bsn("106658037")  # the service, and whoever holds the certificate, cannot test it
    payload = cbor.decode(cose.parse_sign1(data).payload)
    older = cose.sign1(NODE, cbor.encode(dict(payload, bsn=BsnCommitment.argon2id("106658037").to_cbor())),
                       {cose.KID: NODE.did.encode("ascii")})
    refused(older, "keyed")  # an older node's guessable commitment gets no new certificate


def test_a_client_sends_no_name_and_one_that_names_him_is_refused() -> None:
    """The service learns no personal data of a client (the module's promise): his request once carried the
    name his node was given, as the certificate would."""
    with pytest.raises(EnrolmentRefused, match="names no one"):
        request(token("client"), role="client", ids={"bsn": "106658037"}, organisation="J. Jansen")
    payload = cbor.decode(cose.parse_sign1(request(token("client"), role="client", ids={"bsn": "106658037"})).payload)
    assert payload["org"] == CLIENT_ORGANISATION
    forged = cose.sign1(NODE, cbor.encode(dict(payload, org="J. Jansen")), {cose.KID: NODE.did.encode("ascii")})
    refused(forged, "names no one")


def test_a_token_is_never_bound_to_a_bsn() -> None:
    with pytest.raises(EnrolmentRefused):
        token("client", identifiers={"bsn": "106658037"})


def test_garbage_is_refused_with_a_reason() -> None:
    for data in (b"", b"\xa0", cbor.encode({"typ": "iwlz-enrolment-request"}), token()):
        with pytest.raises(EnrolmentRefused):
            verify_enrolment_request(data, root=ROOT.did, now=NOW)
