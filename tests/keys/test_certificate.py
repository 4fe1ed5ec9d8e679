"""Membership certificates and the trust store: every failure has its own code."""

import pytest

from keys import (
    CLIENT_ORGANISATION,
    BsnCommitment,
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    Identity,
    InvalidSignature,
    MalformedCertificate,
    TrustStore,
    UnknownIssuer,
    issue_certificate,
    parse_certificate,
    sign_revocation_list,
)
from keys import cbor, cose
from tests.helpers import BSN_KEY, NOW, YEAR, Network, seeded


def test_verified_certificate_gives_the_member() -> None:
    net = Network()
    node = seeded(2)
    cert = net.certificate(node, "zorgkantoor", organisation="Zorgkantoor Noord")
    member = net.trust().verify_certificate(cert, NOW)
    assert member.did == node.did
    assert member.role == "zorgkantoor"
    assert member.organisation == "Zorgkantoor Noord"
    assert member.identifiers == {"uzovi": "5151"}
    assert member.issuer == net.root.did
    assert len(member.cert_id) == 16


def test_certificate_claims_follow_rfc8392_numbering() -> None:
    net = Network()
    node = seeded(2)
    _, member = parse_certificate(net.certificate(node))
    sign1 = cose.parse_sign1(net.certificate(node))
    claims = cbor.decode(sign1.payload)
    assert claims[1] == net.root.did and claims[2] == node.did
    assert claims[4] == NOW + YEAR and claims[5] == NOW - YEAR
    assert claims[8] == {1: {1: 1, -1: 6, -2: node.public_key}}
    assert sign1.protected == {1: -8, 4: net.root.did.encode()}


def test_client_certificate_binds_the_bsn_without_carrying_it() -> None:
    net = Network()
    cert = net.certificate(seeded(3), "client")
    assert b"106658037" not in cert
    member = net.trust().verify_certificate(cert, NOW)
    assert member.matches_bsn("106658037", BSN_KEY)
    assert not member.matches_bsn("737459086", BSN_KEY)
    assert not member.matches_bsn("not-a-bsn", BSN_KEY)
    assert "bsn" not in member.identifiers


def test_a_bsn_cannot_be_tested_against_a_clients_certificate_without_his_nodes_key() -> None:
    """Attack: a member that holds a client's certificate (it goes in the clear with his messages: to a provider
    he asks for its care offer, to his bootstrap peers, along the path) tests a BSN it knows against the
    commitment. With argon2id one guess (~35 ms) said whether it was his, and the ~9·10^7 numbers that pass the
    11-proef take weeks of one core. A keyed commitment says nothing without the key his node sends, sealed, only
    to those it tells his BSN."""
    net = Network()
    member = net.trust().verify_certificate(net.certificate(seeded(3), "client"), NOW)
    assert member.bsn_commitment is not None and member.bsn_commitment.alg == "blake2b-keyed"
    assert not member.matches_bsn("106658037")  # the guess, without the key
    assert not member.matches_bsn("106658037", bytes(32)) and not member.matches_bsn("106658037", BSN_KEY[:31])
    assert member.matches_bsn("106658037", BSN_KEY)
    with pytest.raises(MalformedCertificate, match="bsn_key"):  # a root cannot make a guessable one by mistake
        issue_certificate(net.root, subject=seeded(4).did, organisation=CLIENT_ORGANISATION, role="client",
                          identifiers={"bsn": "106658037"}, not_before=NOW, expires=NOW + 1, issued_at=NOW)
    with pytest.raises(MalformedCertificate, match="keyed"):
        issue_certificate(net.root, subject=seeded(4).did, organisation=CLIENT_ORGANISATION, role="client",
                          identifiers={}, not_before=NOW, expires=NOW + 1, issued_at=NOW,
                          bsn_commitment=BsnCommitment.argon2id("106658037"))
    # A certificate issued before, with an argon2id commitment, is still read (and still guessable).
    claims = cbor.decode(cose.parse_sign1(net.certificate(seeded(5), "client")).payload)
    claims["bsn"] = BsnCommitment.argon2id("106658037").to_cbor()
    old = cose.sign1(net.root, cbor.encode(claims), {cose.KID: net.root.did.encode()})
    assert net.trust().verify_certificate(old, NOW).matches_bsn("106658037")
    for bad in ({"alg": "blake2b-keyed", "hash": b"x" * 31}, {"alg": "blake2b-keyed", "hash": b"x" * 32, "salt": b""},
                {"alg": "sha1", "hash": b"x" * 32}):
        forged = cose.sign1(net.root, cbor.encode(dict(claims, bsn=bad)), {cose.KID: net.root.did.encode()})
        with pytest.raises(MalformedCertificate):
            net.trust().verify_certificate(forged, NOW)


def test_a_clients_certificate_names_no_one() -> None:
    """A certificate rides in the clear in its holder's messages (and at the enrolment service): a client's name
    in its "org" claim was on the wire for anyone who saw one of his requests. A root cannot issue one, and one it
    signed all the same (an older tool, another implementation) counts nowhere."""
    net = Network()
    client = seeded(3)
    with pytest.raises(MalformedCertificate, match="names no one"):
        net.certificate(client, "client", organisation="J. Jansen")
    claims = cbor.decode(cose.parse_sign1(net.certificate(client, "client", organisation=CLIENT_ORGANISATION)).payload)
    for org in ("J. Jansen", "", 7):
        forged = cose.sign1(net.root, cbor.encode(dict(claims, org=org)), {cose.KID: net.root.did.encode()})
        with pytest.raises(MalformedCertificate):
            net.trust().verify_certificate(forged, NOW)
    cert = net.certificate(client, "client", organisation=CLIENT_ORGANISATION)
    assert net.trust().verify_certificate(cert, NOW).organisation == "client"
    with pytest.raises(MalformedCertificate, match="1-200"):
        net.certificate(seeded(4), "zorgkantoor", organisation="x" * 201)


def test_certificate_from_an_unknown_root_is_refused() -> None:
    cert = Network(root=seeded(9)).certificate(seeded(2))
    with pytest.raises(UnknownIssuer) as info:
        Network().trust().verify_certificate(cert, NOW)
    assert info.value.code == "unknown-issuer"


def test_certificate_signed_by_an_impostor_of_the_root_is_refused() -> None:
    net = Network()
    genuine = cose.parse_sign1(net.certificate(seeded(2)))
    forged = cose.sign1(seeded(9), genuine.payload, {4: net.root.did.encode()})
    with pytest.raises(InvalidSignature) as info:
        net.trust().verify_certificate(forged, NOW)
    assert info.value.code == "bad-signature"


def test_expired_and_not_yet_valid_certificates_are_refused() -> None:
    net = Network()
    expired = net.certificate(seeded(2), not_before=NOW - 2 * YEAR, expires=NOW - 1)
    future = net.certificate(seeded(2), not_before=NOW + 3600, expires=NOW + YEAR)
    with pytest.raises(CertificateExpired) as info:
        net.trust().verify_certificate(expired, NOW)
    assert info.value.code == "expired"
    with pytest.raises(CertificateNotYetValid) as info2:
        net.trust().verify_certificate(future, NOW)
    assert info2.value.code == "not-yet-valid"


def test_revocation_list_revokes_and_older_versions_are_ignored() -> None:
    net = Network()
    trust = net.trust()
    cert = net.certificate(seeded(2))
    cert_id = trust.verify_certificate(cert, NOW).cert_id
    v2 = sign_revocation_list(net.root, version=2, revoked=[cert_id], issued_at=NOW)
    v1 = sign_revocation_list(net.root, version=1, revoked=[], issued_at=NOW - 10)
    assert trust.apply_revocation_list(v2) is True
    with pytest.raises(CertificateRevoked) as info:
        trust.verify_certificate(cert, NOW)
    assert info.value.code == "revoked"
    assert trust.apply_revocation_list(v1) is False
    assert trust.apply_revocation_list(v2) is False
    assert trust.revocation_version(net.root.did) == 2
    with pytest.raises(CertificateRevoked):
        trust.verify_certificate(cert, NOW)


def test_newer_revocation_list_replaces_the_older_one() -> None:
    net = Network()
    trust = net.trust()
    cert = net.certificate(seeded(2))
    cert_id = trust.verify_certificate(cert, NOW).cert_id
    trust.apply_revocation_list(sign_revocation_list(net.root, version=1, revoked=[cert_id], issued_at=NOW))
    trust.apply_revocation_list(sign_revocation_list(net.root, version=2, revoked=[], issued_at=NOW))
    assert trust.verify_certificate(cert, NOW).cert_id == cert_id


def test_revocation_list_from_another_root_is_refused() -> None:
    with pytest.raises(UnknownIssuer):
        Network().trust().apply_revocation_list(sign_revocation_list(seeded(9), version=5, revoked=[], issued_at=NOW))


def _heavy_list(kid: str) -> bytes:
    """What anyone may post to every node: a list in a valid frame whose payload is 500,000 CBOR items (~120 ms to
    decode and check), with a signature that is not the root's."""
    payload = cbor.encode({"typ": "iwlz-revocation-list", "iss": kid, "version": 9, "iat": NOW, "revoked": [0] * 500_000})
    return cose.assemble_sign1(cose.protected_header({cose.ALG: cose.EDDSA, cose.KID: kid.encode("ascii")}), payload,
                               b"\x01" * 64)


@pytest.mark.parametrize("signer", ["the network root", "a stranger"])
def test_a_revocation_list_is_checked_against_its_root_before_its_payload_is_decoded(
        signer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    net = Network()
    trust = net.trust()
    decoded: list[int] = []
    real = cbor.decode
    monkeypatch.setattr(cbor, "decode", lambda data, **kw: decoded.append(len(data)) or real(data, **kw))
    forged = _heavy_list(net.root.did if signer == "the network root" else seeded(9).did)
    with pytest.raises(InvalidSignature if signer == "the network root" else UnknownIssuer):
        trust.apply_revocation_list(forged)
    assert [n for n in decoded if n > 16 * 1024] == []  # only the protected header was decoded
    assert trust.revocation_version(net.root.did) == 0


@pytest.mark.parametrize("signer", ["the network root", "a stranger"])
def test_a_certificate_is_checked_against_its_root_before_its_claims_are_decoded(
        signer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A certificate rides in the protected header of anyone's message (at most 8 KiB): one whose claims are
    thousands of CBOR items, under a kid that is the root's or a stranger's, is refused from its frame."""
    net = Network()
    trust = net.trust()
    kid = net.root.did if signer == "the network root" else seeded(9).did
    claims = cbor.encode({1: kid, 2: seeded(2).did, "role": "zorgkantoor", "pad": [0] * 7_500})
    forged = cose.assemble_sign1(cose.protected_header({cose.KID: kid.encode("ascii")}), claims, b"\x01" * 64)
    decoded: list[int] = []
    real = cbor.decode
    monkeypatch.setattr(cbor, "decode", lambda data, **kw: decoded.append(len(data)) or real(data, **kw))
    with pytest.raises(InvalidSignature if signer == "the network root" else UnknownIssuer):
        trust.verify_certificate(forged, NOW)
    assert [n for n in decoded if n > 1024] == []  # only the certificate's own protected header was decoded


@pytest.mark.parametrize(
    "role,identifiers,region,match",
    [
        ("zorgkantoor", {"agb": "12345678"}, None, "needs identifier"),
        ("ciz", {"kvk": "62253778", "bsn": "106658037"}, None, "does not take"),
        ("client", {"bsn": "106658036"}, None, "11-proef"),
        ("zorgaanbieder", {"agb": "1234"}, None, "8 digits"),
        ("zorgaanbieder", {"agb": "12345678"}, "51", "4 digits"),
        ("apotheek", {"kvk": "62253778"}, None, "unknown role"),
    ],
)
def test_issuing_checks_role_and_identifiers(role: str, identifiers: dict[str, str], region: str | None, match: str) -> None:
    with pytest.raises(Exception, match=match):
        issue_certificate(
            seeded(1), subject=seeded(2).did, organisation=CLIENT_ORGANISATION if role == "client" else "X", role=role,
            identifiers=identifiers, region=region, not_before=NOW, expires=NOW + 1, issued_at=NOW,
        )


def test_malformed_certificate_bytes_are_refused_with_malformed() -> None:
    trust = Network().trust()
    for data in (b"", b"\x00", cbor.encode(cbor.Tag(18, [b"", {}, b"", b""]))):
        with pytest.raises(MalformedCertificate) as info:
            trust.verify_certificate(data, NOW)
        assert info.value.code == "malformed"


def test_trust_store_caches_verification_but_rechecks_time_and_revocation() -> None:
    net = Network()
    trust = net.trust()
    cert = net.certificate(seeded(2), expires=NOW + 10)
    trust.verify_certificate(cert, NOW)
    with pytest.raises(CertificateExpired):
        trust.verify_certificate(cert, NOW + 11)


def test_identity_is_not_a_root_just_because_it_signs() -> None:
    outsider = Identity.generate()
    cert = issue_certificate(outsider, subject=seeded(2).did, organisation="X", role="ciz",
                             identifiers={"kvk": "62253778"}, not_before=NOW, expires=NOW + 10, issued_at=NOW)
    with pytest.raises(UnknownIssuer):
        TrustStore([seeded(1).did]).verify_certificate(cert, NOW)


def test_a_certificate_names_the_one_it_supersedes() -> None:
    from keys import Identity, MalformedCertificate, issue_certificate, parse_certificate

    root, node = Identity.from_seed(b"\x01" * 32), Identity.from_seed(b"\x02" * 32)
    common = dict(subject=node.did, organisation="Noord", role="zorgkantoor", identifiers={"uzovi": "5151"},
                  not_before=0, expires=100, issued_at=0)
    assert parse_certificate(issue_certificate(root, **common))[1].supersedes is None
    cert = issue_certificate(root, **common, supersedes=b"\x07" * 16)
    assert parse_certificate(cert)[1].supersedes == b"\x07" * 16
    with pytest.raises(MalformedCertificate):
        issue_certificate(root, **common, supersedes=b"\x07" * 3)


def test_a_zorgaanbieder_with_vestigingen_is_each_of_its_agb_codes() -> None:
    from keys import Identity, MalformedCertificate, issue_certificate, parse_certificate

    root, node = Identity.from_seed(b"\x01" * 32), Identity.from_seed(b"\x02" * 32)
    common = dict(subject=node.did, organisation="Zorggroep", role="zorgaanbieder", identifiers={"agb": "22334455"},
                  not_before=0, expires=100, issued_at=0)
    member = parse_certificate(issue_certificate(root, **common, vestigingen=["22334466", "22334477"]))[1]
    assert member.identifiers == {"agb": "22334455"} and member.vestigingen == ("22334466", "22334477")
    assert member.identifier_values("agb") == ("22334455", "22334466", "22334477")
    assert member.identifier_values("kvk") == ()
    assert parse_certificate(issue_certificate(root, **common))[1].vestigingen == ()  # absent unless given
    assert parse_certificate(issue_certificate(root, **common, vestigingen=[]))[1].vestigingen == ()
    for bad, reason in ((["22334455"], "not the main one"), (["22334466", "22334466"], "given once"), (["1234"], "8 digits")):
        with pytest.raises(MalformedCertificate, match=reason):
            issue_certificate(root, **common, vestigingen=bad)
    with pytest.raises(MalformedCertificate, match="only a zorgaanbieder"):
        issue_certificate(root, **{**common, "role": "zorgkantoor", "identifiers": {"uzovi": "5151"}}, vestigingen=["22334466"])
