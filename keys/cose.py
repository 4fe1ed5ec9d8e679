"""COSE_Sign1 (RFC 9052 §4.2) with EdDSA over Ed25519, and nothing else.

A COSE_Sign1 is ``18([protected: bstr, unprotected: map, payload: bstr,
signature: bstr])``; the signature covers the Sig_structure
``["Signature1", protected, external_aad, payload]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import cbor2

from keys import cbor
from keys.errors import MalformedData
from keys.identity import Identity, Verifier

COSE_SIGN1_TAG: Final = 18
ALG: Final = 1
KID: Final = 4
EDDSA: Final = -8
_SIGN1_TAGS: Final = frozenset({COSE_SIGN1_TAG})


@dataclass(frozen=True, slots=True)
class Sign1:
    """A decoded, not yet verified, COSE_Sign1."""

    protected: dict[int | str, Any]
    protected_bytes: bytes
    unprotected: dict[int | str, Any]
    payload: bytes
    signature: bytes

    @property
    def kid(self) -> bytes:
        kid = self.protected.get(KID)
        if not isinstance(kid, bytes):
            raise MalformedData("protected header lacks a kid")
        return kid

    def verify(self, verifier: Verifier, external_aad: bytes = b"") -> None:
        """Raises InvalidSignature unless the signature is valid for ``verifier``."""
        verifier.verify(sig_structure(self.protected_bytes, self.payload, external_aad), self.signature)


def sig_structure(protected_bytes: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    # Only byte and text strings: already deterministic, no key sorting needed.
    return cbor2.dumps(["Signature1", bytes(protected_bytes), bytes(external_aad), bytes(payload)])


def sign1(
    identity: Identity,
    payload: bytes,
    protected: Mapping[int | str, Any],
    unprotected: Mapping[int | str, Any] | None = None,
    external_aad: bytes = b"",
) -> bytes:
    """Sign ``payload``; ``protected`` gets alg EdDSA added."""
    return sign1_with_header(identity, payload, protected_header(protected), unprotected, external_aad)


def protected_header(protected: Mapping[int | str, Any]) -> bytes:
    """The encoded protected header with alg EdDSA: a sender with a fixed header encodes it once."""
    header = dict(protected)
    header[ALG] = EDDSA
    return cbor.encode(header)


def sign1_with_header(
    identity: Identity,
    payload: bytes,
    protected_bytes: bytes,
    unprotected: Mapping[int | str, Any] | None = None,
    external_aad: bytes = b"",
) -> bytes:
    signature = identity.sign(sig_structure(protected_bytes, payload, external_aad))
    if not unprotected:
        return cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected_bytes, {}, payload, signature]))
    return cbor.encode(cbor.Tag(COSE_SIGN1_TAG, [protected_bytes, dict(unprotected), payload, signature]))


def parse_sign1(data: bytes, *, max_size: int = cbor.DEFAULT_MAX_SIZE) -> Sign1:
    """Decode the structure of a COSE_Sign1; the signature is not checked here.

    Raises:
        TooLarge, MalformedData
    """
    item = cbor.decode(data, max_size=max_size, allowed_tags=_SIGN1_TAGS)
    if not isinstance(item, cbor.Tag) or item.tag != COSE_SIGN1_TAG:
        raise MalformedData("not a tagged COSE_Sign1")
    parts = item.value
    if not isinstance(parts, list) or len(parts) != 4:
        raise MalformedData("COSE_Sign1 must be an array of four items")
    protected_bytes, unprotected, payload, signature = parts
    if not isinstance(protected_bytes, bytes) or not isinstance(unprotected, dict):
        raise MalformedData("COSE_Sign1 headers are malformed")
    if not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise MalformedData("COSE_Sign1 payload must be attached and the signature a byte string")
    protected = cbor.decode(protected_bytes, max_size=max_size) if protected_bytes else {}
    if not isinstance(protected, dict):
        raise MalformedData("protected header must be a map")
    if protected.get(ALG) != EDDSA:
        raise MalformedData("only alg EdDSA (-8) is accepted")
    if set(protected) & set(unprotected):
        raise MalformedData("a header label appears in both buckets")
    return Sign1(protected, protected_bytes, unprotected, payload, signature)


__all__ = ["Sign1", "sign1", "sign1_with_header", "protected_header", "parse_sign1", "sig_structure", "COSE_SIGN1_TAG", "ALG", "KID", "EDDSA"]
