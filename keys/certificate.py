"""Membership certificates: CWTs (RFC 8392) signed as COSE_Sign1 by a network root.

Claims (integer keys are registered CWT claims, text keys are ours):

    1 iss   did of the issuing root            6 iat  issued at (seconds)
    2 sub   did of the member node             7 cti  certificate id (16 bytes)
    4 exp   expiry (seconds)                   8 cnf  {1: COSE_Key of the subject}
    5 nbf   not before (seconds)
    "org"     organisation name; "client" for every client (a person's name is personal data)
    "ids"     {"kvk"|"uzovi"|"agb": digits}
    "role"    ciz|zorgkantoor|zorgaanbieder|cak|client
    "region"  UZOVI of the zorgkantoor region (providers and clients), optional
    "vestigingen"  for zorgaanbieders with more than one AGB code (vestigingen): the codes beyond
              the one in "ids", optional; the member is each of them (queries, evidence, addresses)
    "sup"     the certificate id this one supersedes (a renewal or a new key of the same
              member), optional: peers drop the superseded one's announcement at once
    "bsn"     for clients only: a commitment to the BSN, {"alg": "blake2b-keyed", "hash"}
              under a key his node keeps (or, issued before, {"alg": "argon2id", "ops",
              "mem", "salt", "hash"}), so that the certificate, which travels in clear in
              every envelope, never carries the BSN, nor lets one be tested against it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import nacl.exceptions
import nacl.pwhash
import nacl.utils

from keys import cbor, cose
from keys.did import did_to_public_key, is_did
from keys.errors import InvalidIdentifier, KeysError, MalformedCertificate, MalformedKey
from keys.identifiers import check_agb, check_bsn, check_kvk, check_uzovi
from keys.identity import Identity

ROLES: Final = ("ciz", "zorgkantoor", "zorgaanbieder", "cak", "client")
CERT_ID_SIZE: Final = 16
MAX_CERT_SIZE: Final = 8 * 1024
MAX_VESTIGINGEN: Final = 200
# What a client's certificate says in "org": it rides in the clear in every message he sends, so it names no one.
CLIENT_ORGANISATION: Final = "client"
# Required and allowed identifiers per role; a client is bound to his BSN.
_ROLE_IDENTIFIERS: Final[dict[str, tuple[frozenset[str], frozenset[str]]]] = {
    "ciz": (frozenset({"kvk"}), frozenset({"kvk"})),
    "cak": (frozenset({"kvk"}), frozenset({"kvk"})),
    "zorgkantoor": (frozenset({"uzovi"}), frozenset({"uzovi", "kvk"})),
    "zorgaanbieder": (frozenset({"agb"}), frozenset({"agb", "kvk"})),
    "client": (frozenset({"bsn"}), frozenset({"bsn"})),
}
_CHECKS: Final = {"kvk": check_kvk, "uzovi": check_uzovi, "agb": check_agb, "bsn": check_bsn}
# argon2id cost of the BSN commitment: ~16 ms per guess keeps a brute force over
# all 10^9 BSNs at months of CPU per certificate, and one check per node per certificate.
_BSN_OPS: Final = 3
_BSN_MEM: Final = 16 * 1024 * 1024
_BSN_MAX_OPS: Final = 10
_BSN_MAX_MEM: Final = 256 * 1024 * 1024
KEYED: Final = "blake2b-keyed"
ARGON2ID: Final = "argon2id"
BSN_KEY_SIZE: Final = 32


def _bsn_hash(bsn: str, salt: bytes, ops: int, mem: int) -> bytes:
    return bytes(nacl.pwhash.argon2id.kdf(32, bsn.encode("ascii"), salt, opslimit=ops, memlimit=mem))


def _keyed_hash(bsn: str, key: bytes) -> bytes:
    return hashlib.blake2b(bsn.encode("ascii"), digest_size=32, key=key, person=b"iwlz-bsn").digest()


@dataclass(frozen=True, slots=True)
class BsnCommitment:
    """What binds a client's certificate to his BSN without the BSN in it.

    Keyed (``blake2b-keyed``): BLAKE2b of the BSN under 32 random bytes his node keeps and sends, sealed, only with
    a request that names his BSN, to a party that learns the BSN from it anyway. Whoever else holds the certificate
    (it goes in the clear with his messages) cannot test a BSN against it. The ``argon2id`` form of certificates
    issued before is still read: anyone holding one tests a BSN he knows with one guess (~35 ms)."""

    salt: bytes
    digest: bytes
    ops: int = _BSN_OPS
    mem: int = _BSN_MEM
    alg: str = ARGON2ID

    @classmethod
    def keyed(cls, bsn: str, key: bytes) -> BsnCommitment:
        if len(key) != BSN_KEY_SIZE:
            raise MalformedCertificate(f"a BSN key is {BSN_KEY_SIZE} bytes")
        return cls(b"", _keyed_hash(check_bsn(bsn), key), 0, 0, KEYED)

    @classmethod
    def argon2id(cls, bsn: str) -> BsnCommitment:
        """The form of certificates issued before keyed commitments (for tests that they are still read)."""
        salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
        return cls(salt, _bsn_hash(check_bsn(bsn), salt, _BSN_OPS, _BSN_MEM))

    def matches(self, bsn: str, key: bytes | None = None) -> bool:
        """Whether this commits to ``bsn``; a keyed commitment needs its ``key`` to say yes."""
        try:
            bsn = check_bsn(bsn)
            if self.alg == KEYED:
                return key is not None and len(key) == BSN_KEY_SIZE and hmac.compare_digest(_keyed_hash(bsn, key),
                                                                                             self.digest)
            candidate = _bsn_hash(bsn, self.salt, self.ops, self.mem)
        except (InvalidIdentifier, nacl.exceptions.CryptoError):
            return False
        return hmac.compare_digest(candidate, self.digest)

    def to_cbor(self) -> dict[str, Any]:
        if self.alg == KEYED:
            return {"alg": KEYED, "hash": self.digest}
        return {"alg": ARGON2ID, "ops": self.ops, "mem": self.mem, "salt": self.salt, "hash": self.digest}

    @classmethod
    def from_cbor(cls, value: object) -> BsnCommitment:
        if not isinstance(value, dict) or value.get("alg") not in (KEYED, ARGON2ID):
            raise MalformedCertificate("bsn commitment is malformed")
        digest = value.get("hash")
        if not (isinstance(digest, bytes) and len(digest) == 32):
            raise MalformedCertificate("bsn commitment hash is malformed")
        if value["alg"] == KEYED:
            if set(value) != {"alg", "hash"}:
                raise MalformedCertificate("a keyed bsn commitment is its alg and hash")
            return cls(b"", digest, 0, 0, KEYED)
        salt, ops, mem = value.get("salt"), value.get("ops"), value.get("mem")
        if not (isinstance(salt, bytes) and len(salt) == nacl.pwhash.argon2id.SALTBYTES):
            raise MalformedCertificate("bsn commitment salt is malformed")
        if not (isinstance(ops, int) and 1 <= ops <= _BSN_MAX_OPS and isinstance(mem, int) and 8192 <= mem <= _BSN_MAX_MEM):
            raise MalformedCertificate("bsn commitment cost is out of bounds")
        return cls(salt, digest, ops, mem)


@dataclass(frozen=True, slots=True)
class Member:
    """What a verified certificate says about a node."""

    did: str
    organisation: str
    role: str
    identifiers: Mapping[str, str]
    region: str | None
    not_before: int
    expires: int
    cert_id: bytes
    issuer: str
    cert_hash: bytes
    bsn_commitment: BsnCommitment | None = field(default=None, repr=False)
    supersedes: bytes | None = None
    vestigingen: tuple[str, ...] = ()  # further AGB codes of the same organisation

    def identifier_values(self, name: str) -> tuple[str, ...]:
        """Every identifier of this type the member holds: its main one and, for AGB, its vestigingen."""
        main = self.identifiers.get(name)
        return ((main,) if main else ()) + (self.vestigingen if name == "agb" else ())

    def identifier_pairs(self) -> list[tuple[str, str]]:
        """(name, value) of every identifier the member holds, vestigingen included (as agb)."""
        return list(self.identifiers.items()) + [("agb", code) for code in self.vestigingen]

    def matches_bsn(self, bsn: str, key: bytes | None = None) -> bool:
        """True when this member is the client with ``bsn`` (``key``: what his node sent with it, for a keyed
        commitment)."""
        return self.bsn_commitment is not None and self.bsn_commitment.matches(bsn, key)

    @property
    def cert_id_hex(self) -> str:
        return self.cert_id.hex()


def check_organisation(role: str, organisation: object) -> str:
    """The "org" claim of a certificate for ``role``: an organisation's name, or for a client ``"client"``, since
    a person's name is personal data and the certificate travels in the clear."""
    if role == "client":
        if organisation != CLIENT_ORGANISATION:
            raise MalformedCertificate(f"a client's certificate names no one: its org is {CLIENT_ORGANISATION!r}")
        return CLIENT_ORGANISATION
    if not isinstance(organisation, str) or not 0 < len(organisation) <= 200:
        raise MalformedCertificate("organisation name must be 1-200 characters")
    return organisation


def _check_identifier_names(role: str, names: set[str]) -> None:
    required, allowed = _ROLE_IDENTIFIERS[role]
    missing = required - names
    if missing:
        raise MalformedCertificate(f"role {role} needs identifier(s) {', '.join(sorted(missing))}")
    extra = names - allowed
    if extra:
        raise MalformedCertificate(f"role {role} does not take identifier(s) {', '.join(sorted(extra))}")


def _check_identifiers(role: str, identifiers: Mapping[str, str | None], *, committed_bsn: bool = False) -> dict[str, str]:
    """The identifiers checked for ``role``; ``committed_bsn``: the BSN comes as a commitment, not among them."""
    given = {k: v for k, v in identifiers.items() if v is not None}
    _check_identifier_names(role, set(given) | ({"bsn"} if committed_bsn else set()))
    return {k: _CHECKS[k](v) for k, v in given.items()}


def issue_certificate(
    root: Identity,
    *,
    subject: str,
    organisation: str,
    role: str,
    identifiers: Mapping[str, str | None],
    not_before: int,
    expires: int,
    issued_at: int,
    region: str | None = None,
    cert_id: bytes | None = None,
    supersedes: bytes | None = None,
    vestigingen: tuple[str, ...] | list[str] = (),
    bsn_commitment: BsnCommitment | None = None,
    bsn_key: bytes | None = None,
) -> bytes:
    """Sign a membership certificate for ``subject`` (a did:key). A client's BSN comes in ``identifiers`` with the
    ``bsn_key`` his node keeps (the commitment is made here), or as the keyed ``bsn_commitment`` his node made
    (enrolment: the root never sees the BSN)."""
    if role not in ROLES:
        raise MalformedCertificate(f"unknown role {role!r}")
    if not is_did(subject):
        raise MalformedKey("subject is not an Ed25519 did:key")
    check_organisation(role, organisation)
    if expires <= not_before:
        raise MalformedCertificate("certificate expires before it becomes valid")
    if bsn_commitment is not None and identifiers.get("bsn") is not None:
        raise MalformedCertificate("give the BSN or its commitment, not both")
    ids = _check_identifiers(role, identifiers, committed_bsn=bsn_commitment is not None)
    claims: dict[int | str, Any] = {
        1: root.did,
        2: subject,
        4: expires,
        5: not_before,
        6: issued_at,
        7: cert_id if cert_id is not None else nacl.utils.random(CERT_ID_SIZE),
        8: {1: {1: 1, -1: 6, -2: did_to_public_key(subject)}},
        "org": organisation,
        "role": role,
    }
    bsn = ids.pop("bsn", None)
    if bsn is not None:
        if bsn_key is None:
            raise MalformedCertificate("a client's BSN is committed under the key his node keeps (bsn_key): without "
                                       "one, whoever holds the certificate can test a BSN against it")
        bsn_commitment = BsnCommitment.keyed(bsn, bsn_key)
    if bsn_commitment is not None:
        if bsn_commitment.alg != KEYED:
            raise MalformedCertificate("a new certificate carries a keyed BSN commitment (BsnCommitment.keyed)")
        claims["bsn"] = bsn_commitment.to_cbor()
    claims["ids"] = ids
    if region is not None:
        claims["region"] = check_uzovi(region)
    if supersedes is not None:
        if len(supersedes) != CERT_ID_SIZE:
            raise MalformedCertificate("a superseded certificate id is 16 bytes")
        claims["sup"] = supersedes
    if vestigingen:
        claims["vestigingen"] = list(_check_vestigingen(role, ids.get("agb"), list(vestigingen)))
    return cose.sign1(root, cbor.encode(claims), {cose.KID: root.did.encode("ascii")})


def _check_vestigingen(role: str, main: str | None, codes: object) -> tuple[str, ...]:
    if role != "zorgaanbieder" or main is None:
        raise MalformedCertificate("only a zorgaanbieder has vestigingen (more AGB codes)")
    if not isinstance(codes, list) or not 0 < len(codes) <= MAX_VESTIGINGEN or not all(isinstance(c, str) for c in codes):
        raise MalformedCertificate(f"vestigingen is a list of 1 to {MAX_VESTIGINGEN} AGB codes")
    try:
        checked = tuple(check_agb(c) for c in codes)
    except InvalidIdentifier as exc:
        raise MalformedCertificate(f"vestiging: {exc.reason}") from exc
    if len(set(checked) | {main}) != len(checked) + 1:
        raise MalformedCertificate("each vestiging's AGB code is given once, and not the main one again")
    return checked


def _text(claims: Mapping[int | str, Any], key: int | str, name: str) -> str:
    value = claims.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedCertificate(f"certificate claim {name} is missing")
    return value


def _int(claims: Mapping[int | str, Any], key: int, name: str) -> int:
    value = claims.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedCertificate(f"certificate claim {name} is missing")
    return value


def parse_certificate(data: bytes, *, signed: Callable[[cose.Sign1], None] | None = None) -> tuple[cose.Sign1, Member]:
    """Decode a certificate and its claims. The issuer's signature is checked only by ``signed`` (the TrustStore
    passes its check): from the frame, before the claims are decoded, since a certificate rides in anyone's message.
    """
    try:
        sign1 = cose.parse_sign1(data, max_size=MAX_CERT_SIZE)
    except KeysError as exc:
        raise MalformedCertificate(f"certificate is malformed: {exc.reason}") from exc
    if signed is not None:
        signed(sign1)
    try:
        claims = cbor.decode(sign1.payload, max_size=MAX_CERT_SIZE)
    except MalformedCertificate:
        raise
    except KeysError as exc:
        raise MalformedCertificate(f"certificate is malformed: {exc.reason}") from exc
    if not isinstance(claims, dict):
        raise MalformedCertificate("certificate claims must be a map")
    issuer, subject = _text(claims, 1, "iss"), _text(claims, 2, "sub")
    if not is_did(issuer) or not is_did(subject):
        raise MalformedCertificate("certificate iss and sub must be did:key")
    if sign1.protected.get(cose.KID) != issuer.encode("ascii"):
        raise MalformedCertificate("certificate kid does not name its issuer")
    role = _text(claims, "role", "role")
    if role not in ROLES:
        raise MalformedCertificate("certificate role is unknown")
    cert_id = claims.get(7)
    if not isinstance(cert_id, bytes) or len(cert_id) != CERT_ID_SIZE:
        raise MalformedCertificate("certificate id (cti) is malformed")
    cnf = claims.get(8)
    if cnf != {1: {1: 1, -1: 6, -2: did_to_public_key(subject)}}:
        raise MalformedCertificate("certificate cnf key does not match its subject")
    ids = claims.get("ids")
    if not isinstance(ids, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ids.items()):
        raise MalformedCertificate("certificate identifiers are malformed")
    if "bsn" in ids:
        raise MalformedCertificate("a certificate never carries a BSN in clear")
    commitment = BsnCommitment.from_cbor(claims["bsn"]) if "bsn" in claims else None
    _check_identifier_names(role, set(ids) | ({"bsn"} if commitment is not None else set()))
    try:
        for kind, value in ids.items():
            _CHECKS[kind](value)
    except InvalidIdentifier as exc:
        raise MalformedCertificate(f"certificate identifier: {exc.reason}") from exc
    region = claims.get("region")
    if region is not None and not (isinstance(region, str) and len(region) == 4 and region.isdigit()):
        raise MalformedCertificate("certificate region is malformed")
    supersedes = claims.get("sup")
    if supersedes is not None and not (isinstance(supersedes, bytes) and len(supersedes) == CERT_ID_SIZE):
        raise MalformedCertificate("certificate sup is malformed")
    vestigingen = _check_vestigingen(role, ids.get("agb"), claims["vestigingen"]) if "vestigingen" in claims else ()
    member = Member(
        did=subject,
        organisation=check_organisation(role, _text(claims, "org", "org")),
        role=role,
        identifiers=ids,
        region=region,
        not_before=_int(claims, 5, "nbf"),
        expires=_int(claims, 4, "exp"),
        cert_id=cert_id,
        issuer=issuer,
        cert_hash=hashlib.sha256(data).digest(),
        bsn_commitment=commitment,
        supersedes=supersedes,
        vestigingen=vestigingen,
    )
    return sign1, member


__all__ = ["Member", "BsnCommitment", "issue_certificate", "parse_certificate", "check_organisation", "ROLES",
           "CERT_ID_SIZE", "CLIENT_ORGANISATION", "BSN_KEY_SIZE"]
