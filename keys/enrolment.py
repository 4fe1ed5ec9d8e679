"""Self-enrolment for test networks: join tokens signed by a network root, and a node's signed request.

A token lets its holder obtain a membership certificate for one role from the network's enrolment
service, without a person running ``iwlz cert issue``. It is for test networks (Docker swarm, many
replicas); a production network issues certificates by hand with the root offline.

Token payload (deterministic CBOR map, COSE_Sign1 by the root, kid = root did):
    {"typ": "iwlz-enrolment-token", "iss": root did, "net": network name, "role": role,
     "iat": seconds, "exp": seconds, "jti": 16 bytes, "reuse": bool, "ids"?: {kind: digits}}
"ids", when present, binds the token to exactly that identity; "reuse" false makes it single-use
(the enrolment service remembers the jti).

Request payload (COSE_Sign1 by the enrolling node's own key, kid = its did, which proves it holds
the key the certificate will name):
    {"typ": "iwlz-enrolment-request", "token": token bytes, "sub": did, "org": name, "role": role,
     "ids": {kind: digits}, "bsn"?: commitment, "region"?: uzovi, "vestigingen"?: [agb, ...], "iat": seconds}
A client's node sends the commitment to its BSN under a key it keeps (as the certificate will carry it), never the
BSN, and "client" as its "org", never his name: the enrolment service learns no personal data, and no token is
ever bound to a BSN.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from keys import cbor, cose
from keys.certificate import KEYED, ROLES, BsnCommitment, _check_identifiers, check_organisation
from keys.did import is_did
from keys.errors import KeysError, MalformedCertificate
from keys.identifiers import check_uzovi
from keys.identity import Identity, Verifier

TOKEN_TYPE: Final = "iwlz-enrolment-token"
REQUEST_TYPE: Final = "iwlz-enrolment-request"
MAX_TOKEN_SIZE: Final = 4 * 1024
MAX_REQUEST_SIZE: Final = 16 * 1024
MAX_SKEW: Final = 300  # a request is fresh for five minutes either side of the service's clock
_TEXT_PREFIX: Final = "iwlz-enrol."


class EnrolmentRefused(KeysError):
    """A token or request that does not entitle its holder to a certificate."""

    code = "enrolment-refused"


@dataclass(frozen=True, slots=True)
class EnrolmentToken:
    issuer: str
    network: str
    role: str
    issued_at: int
    expires: int
    token_id: bytes
    reusable: bool
    identifiers: Mapping[str, str] | None
    encoded: bytes


@dataclass(frozen=True, slots=True)
class EnrolmentRequest:
    token: EnrolmentToken
    subject: str
    organisation: str
    role: str
    identifiers: Mapping[str, str]
    bsn_commitment: BsnCommitment | None
    region: str | None
    vestigingen: tuple[str, ...]
    issued_at: int


def issue_enrolment_token(root: Identity, *, network: str, role: str, issued_at: int, expires: int, token_id: bytes,
                          reusable: bool, identifiers: Mapping[str, str] | None = None) -> bytes:
    if role not in ROLES:
        raise EnrolmentRefused(f"unknown role {role!r}")
    if expires <= issued_at:
        raise EnrolmentRefused("a token expires after it is issued")
    if len(token_id) != 16:
        raise EnrolmentRefused("a token id is 16 bytes")
    payload: dict[str, Any] = {"typ": TOKEN_TYPE, "iss": root.did, "net": network, "role": role, "iat": issued_at,
                               "exp": expires, "jti": token_id, "reuse": reusable}
    if identifiers is not None:
        if role == "client":
            raise EnrolmentRefused("a token is never bound to a BSN")
        payload["ids"] = _identity(role, identifiers, "token")
    return cose.sign1(root, cbor.encode(payload), {cose.KID: root.did.encode("ascii")})


def token_text(data: bytes) -> str:
    """The token as one line of text, for a file, an environment variable or a Docker secret."""
    return _TEXT_PREFIX + base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def token_bytes(text: str) -> bytes:
    text = text.strip()
    if not text.startswith(_TEXT_PREFIX) or len(text) > 2 * MAX_TOKEN_SIZE:
        raise EnrolmentRefused("not an iwlz enrolment token")
    body = text[len(_TEXT_PREFIX):]
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise EnrolmentRefused("an enrolment token is base64url") from exc


def read_enrolment_token(data: bytes) -> tuple[cose.Sign1, EnrolmentToken]:
    """Decode a token and check that the root it names signed it. Whether that root is the one a node or
    service trusts, and whether the token is still valid, is for the caller (verify_enrolment_token)."""
    sign1, body = cose.parse_typed(data, typ=TOKEN_TYPE, what="enrolment token", error=EnrolmentRefused,
                                   max_size=MAX_TOKEN_SIZE)
    issuer = _signer(sign1, body, "iss", "enrolment token issuer")
    role, network, jti, reuse = body.get("role"), body.get("net"), body.get("jti"), body.get("reuse")
    if role not in ROLES or not isinstance(network, str):
        raise EnrolmentRefused("enrolment token role or network is malformed")
    if not isinstance(jti, bytes) or len(jti) != 16 or not isinstance(reuse, bool):
        raise EnrolmentRefused("enrolment token id is malformed")
    ids = _identity(str(role), body["ids"], "token") if "ids" in body else None
    return sign1, EnrolmentToken(issuer, network, str(role), _time(body, "iat"), _time(body, "exp"), jti, reuse, ids,
                                 data)


def verify_enrolment_token(data: bytes, *, root: str, now: int) -> EnrolmentToken:
    token = read_enrolment_token(data)[1]
    if token.issuer != root:
        raise EnrolmentRefused("enrolment token was issued by another network root")
    if now >= token.expires:
        raise EnrolmentRefused("enrolment token has expired")
    return token


def sign_enrolment_request(identity: Identity, *, token: bytes, organisation: str, role: str,
                           identifiers: Mapping[str, str], region: str | None, vestigingen: tuple[str, ...] | list[str],
                           issued_at: int, bsn_key: bytes | None = None) -> bytes:
    """The request of the node holding ``identity``; a client's BSN in ``identifiers`` is sent as its commitment
    under ``bsn_key`` (which his node keeps), and his ``organisation`` is ``"client"``
    (keys.certificate.check_organisation)."""
    _organisation(role, organisation)
    ids = dict(identifiers)
    bsn = ids.pop("bsn", None)
    payload: dict[str, Any] = {"typ": REQUEST_TYPE, "token": token, "sub": identity.did, "org": organisation,
                               "role": role, "ids": ids, "iat": issued_at}
    if bsn is not None:
        if bsn_key is None:
            raise EnrolmentRefused("a client's BSN is sent as its commitment under the key his node keeps (bsn_key)")
        payload["bsn"] = _keyed(bsn, bsn_key).to_cbor()
    if region is not None:
        payload["region"] = region
    if vestigingen:
        payload["vestigingen"] = list(vestigingen)
    return cose.sign1(identity, cbor.encode(payload), {cose.KID: identity.did.encode("ascii")})


def verify_enrolment_request(data: bytes, *, root: str, now: int) -> EnrolmentRequest:
    """A request that entitles its sender to a certificate: a valid token of ``root`` for the role (and, for a
    bound token, the identity) asked for, signed with the key to certify, and made within MAX_SKEW of ``now``.
    Whether a single-use token was used before is for the service, which remembers them."""
    sign1, body = cose.parse_typed(data, typ=REQUEST_TYPE, what="enrolment request", error=EnrolmentRefused,
                                   max_size=MAX_REQUEST_SIZE)
    subject = _signer(sign1, body, "sub", "enrolment request subject")
    token_data = body.get("token")
    if not isinstance(token_data, bytes):
        raise EnrolmentRefused("enrolment request carries no token")
    token = verify_enrolment_token(token_data, root=root, now=now)
    issued_at = _time(body, "iat")
    if abs(now - issued_at) > MAX_SKEW:
        raise EnrolmentRefused("enrolment request is not fresh (check the clock)")
    role, organisation = body.get("role"), body.get("org")
    if role != token.role:
        raise EnrolmentRefused(f"the token is for a {token.role}, not a {role}")
    organisation = _organisation(token.role, organisation)
    commitment = _commitment(body.get("bsn")) if "bsn" in body else None
    identifiers = _identity(token.role, body.get("ids"), "request", commitment is not None)
    if token.identifiers is not None and dict(token.identifiers) != dict(identifiers):
        raise EnrolmentRefused("the token is bound to another identity")
    region = body.get("region")
    vestigingen = body.get("vestigingen", [])
    try:
        region = check_uzovi(region) if region is not None else None
    except KeysError as exc:
        raise EnrolmentRefused(f"region: {exc.reason}") from exc
    if not isinstance(vestigingen, list) or not all(isinstance(v, str) for v in vestigingen):
        raise EnrolmentRefused("vestigingen is a list of AGB codes")
    return EnrolmentRequest(token, subject, organisation, token.role, identifiers, commitment, region,
                            tuple(vestigingen), issued_at)


def _organisation(role: str, organisation: object) -> str:
    try:
        return check_organisation(role, organisation)
    except MalformedCertificate as exc:
        raise EnrolmentRefused(exc.reason) from exc


def _signer(sign1: cose.Sign1, body: Mapping[str, Any], key: str, what: str) -> str:
    """The did under ``key``, which must be the kid and must have made the signature."""
    did = body.get(key)
    if not isinstance(did, str) or not is_did(did) or sign1.protected.get(cose.KID) != did.encode("ascii"):
        raise EnrolmentRefused(f"{what} is malformed")
    try:
        sign1.verify(Verifier.from_did(did))
    except KeysError as exc:
        raise EnrolmentRefused(f"{what} did not sign it: the signature does not verify") from exc
    return did


def _identity(role: str, identifiers: object, what: str, commitment: bool = False) -> dict[str, str]:
    if not isinstance(identifiers, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                      for k, v in identifiers.items()):
        raise EnrolmentRefused(f"{what} identifiers are malformed")
    if "bsn" in identifiers:
        raise EnrolmentRefused(f"{what} carries a BSN in clear")
    try:
        return _check_identifiers(role, identifiers, committed_bsn=commitment)
    except KeysError as exc:
        raise EnrolmentRefused(f"{what} identifiers: {exc.reason}") from exc


def _commitment(value: object) -> BsnCommitment:
    try:
        commitment = BsnCommitment.from_cbor(value)
    except MalformedCertificate as exc:
        raise EnrolmentRefused(exc.reason) from exc
    if commitment.alg != KEYED:  # an older node's: whoever held the certificate could test a BSN against it
        raise EnrolmentRefused("a client's BSN commitment is keyed (blake2b-keyed): upgrade the client's node")
    return commitment


def _keyed(bsn: str, key: bytes) -> BsnCommitment:
    try:
        return BsnCommitment.keyed(bsn, key)
    except KeysError as exc:
        raise EnrolmentRefused(exc.reason) from exc


def _time(body: Mapping[str, Any], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 253402300800:
        raise EnrolmentRefused(f"{key} is malformed")
    return value


__all__ = ["EnrolmentRefused", "EnrolmentToken", "EnrolmentRequest", "issue_enrolment_token", "token_text",
           "token_bytes", "read_enrolment_token", "verify_enrolment_token", "sign_enrolment_request",
           "verify_enrolment_request", "MAX_SKEW"]
