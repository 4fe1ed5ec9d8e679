"""Revocation lists: a version number and revoked certificate ids, signed by a root.

Payload (deterministic CBOR map):
    {"typ": "iwlz-revocation-list", "iss": root did, "version": uint,
     "iat": seconds, "revoked": [cert id (16 bytes), ...]}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from keys import cbor, cose
from keys.did import is_did
from keys.errors import MalformedCertificate
from keys.identity import Identity

TYPE: Final = "iwlz-revocation-list"
MAX_LIST_SIZE: Final = 512 * 1024


@dataclass(frozen=True, slots=True)
class RevocationList:
    issuer: str
    version: int
    issued_at: int
    revoked: frozenset[bytes]
    encoded: bytes


def sign_revocation_list(root: Identity, *, version: int, revoked: Iterable[bytes], issued_at: int) -> bytes:
    if version < 1:
        raise MalformedCertificate("revocation list versions start at 1")
    ids = sorted(set(revoked))
    if any(len(i) != 16 for i in ids):
        raise MalformedCertificate("certificate ids are 16 bytes")
    payload = {"typ": TYPE, "iss": root.did, "version": version, "iat": issued_at, "revoked": ids}
    return cose.sign1(root, cbor.encode(payload), {cose.KID: root.did.encode("ascii")})


def parse_revocation_list(data: bytes, *, signed: Callable[[cose.Sign1], None] | None = None
                          ) -> tuple[cose.Sign1, RevocationList]:
    """Decode a revocation list. ``signed`` (the TrustStore's check of its root) runs first, before anything in
    its payload is decoded: anyone may post a list to any node, and 512 KiB of CBOR items cost ~120 ms to decode,
    its signature ~1 ms. Without it, the caller trusts the bytes (a list kept earlier).

    Raises:
        MalformedCertificate, and what ``signed`` raises
    """
    sign1, body = cose.parse_typed(data, typ=TYPE, what="revocation list", error=MalformedCertificate,
                                   max_size=MAX_LIST_SIZE, signed=signed)
    issuer, version, issued_at, revoked = body.get("iss"), body.get("version"), body.get("iat"), body.get("revoked")
    if not isinstance(issuer, str) or not is_did(issuer) or sign1.protected.get(cose.KID) != issuer.encode("ascii"):
        raise MalformedCertificate("revocation list issuer is malformed")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise MalformedCertificate("revocation list version is malformed")
    if not isinstance(issued_at, int) or isinstance(issued_at, bool):
        raise MalformedCertificate("revocation list iat is malformed")
    if not isinstance(revoked, list) or not all(isinstance(i, bytes) and len(i) == 16 for i in revoked):
        raise MalformedCertificate("revoked certificate ids are malformed")
    return sign1, RevocationList(issuer, version, issued_at, frozenset(revoked), data)


__all__ = ["RevocationList", "sign_revocation_list", "parse_revocation_list"]
