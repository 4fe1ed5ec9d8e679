"""COSE_Sign1 (RFC 9052 §4.2) with EdDSA over Ed25519, and nothing else.

A COSE_Sign1 is ``18([protected: bstr, unprotected: map, payload: bstr,
signature: bstr])``; the signature covers the Sig_structure
``["Signature1", protected, external_aad, payload]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import cbor2

from keys import cbor
from keys.errors import KeysError, MalformedData, TooLarge
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
        return assemble_sign1(protected_bytes, payload, signature)
    return cbor.encode(cbor.Tag(COSE_SIGN1_TAG, [protected_bytes, dict(unprotected), payload, signature]))


def assemble_sign1(protected_bytes: bytes, payload: bytes, signature: bytes) -> bytes:
    """The COSE_Sign1 (empty unprotected header) of a signature made earlier: the same bytes signing gave."""
    return cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected_bytes, {}, payload, signature]))


MAX_PROTECTED: Final = 16 * 1024
SIGNATURE_SIZE: Final = 64


def _head(data: bytes, pos: int) -> tuple[int, int, int]:
    """(major type, argument, next position) of the CBOR item head at ``pos``, in its shortest form only."""
    if pos >= len(data):
        raise MalformedData("COSE_Sign1 is cut short")
    first = data[pos]
    major, info = first >> 5, first & 0x1F
    if info < 24:
        return major, info, pos + 1
    if info > 27:
        raise MalformedData("indefinite-length items are not allowed")
    size = 1 << (info - 24)
    if pos + 1 + size > len(data):
        raise MalformedData("COSE_Sign1 is cut short")
    value = int.from_bytes(data[pos + 1:pos + 1 + size], "big")
    if value < (24 if size == 1 else 1 << (4 * size)):
        raise MalformedData("input is not in deterministic CBOR encoding")
    return major, value, pos + 1 + size


def _bstr(data: bytes, pos: int, what: str) -> tuple[bytes, int]:
    major, length, start = _head(data, pos)
    if major != 2 or start + length > len(data):
        raise MalformedData(f"COSE_Sign1 {what} must be a byte string")
    return data[start:start + length], start + length


def parse_sign1(data: bytes, *, max_size: int = cbor.DEFAULT_MAX_SIZE) -> Sign1:
    """Decode the structure of a COSE_Sign1; the signature is not checked here.

    The frame — tag 18, an array of four, the protected header as a byte
    string, an empty unprotected map, the payload and a 64-byte signature —
    is read from its item heads, without decoding anything in it, so that
    whatever a sender packs into a message costs nothing before its
    signature is checked. Only the protected header (at most 16 KiB) is
    decoded here.

    Raises:
        TooLarge, MalformedData
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedData("expected bytes")
    data = bytes(data)
    if len(data) > max_size:
        raise TooLarge(f"input of {len(data)} bytes exceeds the limit of {max_size}")
    if _head(data, 0)[:2] != (6, COSE_SIGN1_TAG):
        raise MalformedData("not a tagged COSE_Sign1")
    major, count, pos = _head(data, _head(data, 0)[2])
    if (major, count) != (4, 4):
        raise MalformedData("COSE_Sign1 must be an array of four items")
    protected_bytes, pos = _bstr(data, pos, "protected header")
    if _head(data, pos)[:2] != (5, 0):
        raise MalformedData("COSE_Sign1 unprotected header must be an empty map")
    payload, pos = _bstr(data, pos + 1, "payload")
    signature, pos = _bstr(data, pos, "signature")
    if len(signature) != SIGNATURE_SIZE or pos != len(data):
        raise MalformedData("COSE_Sign1 must end with a 64-byte signature")
    return Sign1(_protected_header(protected_bytes), protected_bytes, {}, payload, signature)


# A sender encodes its protected header once and sends the same bytes with every message: the decoded header is
# kept by those bytes (at most _HEADERS_LIMIT of at most MAX_PROTECTED bytes: 4 MiB whatever is sent). Only a
# header that passed every check is kept, and no reader changes it.
_HEADERS: dict[bytes, dict[int | str, Any]] = {}
_HEADERS_LIMIT: Final = 256


MAX_LABELS: Final = 8


def _check_flat_map(data: bytes) -> None:
    """A protected header is a map of a few labels, each an integer or text, each value an integer or a string:
    read from its item heads, so that one packed with thousands of items (anyone's message) costs nothing to
    refuse. What is left (order, duplicates, alg) the decoder checks on a handful of items."""
    major, count, pos = _head(data, 0)
    if major != 5:
        raise MalformedData("protected header must be a map")
    if count > MAX_LABELS:
        raise MalformedData(f"protected header has more than {MAX_LABELS} labels")
    for index in range(2 * count):
        major, argument, pos = _head(data, pos)
        if major == 3 or (major == 2 and index % 2):  # a text label or value, a byte-string value: skipped unread
            pos += argument
        elif major not in (0, 1):
            raise MalformedData("protected header labels and values are integers or strings")
    if pos != len(data):
        raise MalformedData("protected header must be one CBOR map")


def _protected_header(protected_bytes: bytes) -> dict[int | str, Any]:
    protected = _HEADERS.get(protected_bytes)
    if protected is not None:
        return protected
    if len(protected_bytes) > MAX_PROTECTED:
        raise MalformedData("protected header is too large")
    if protected_bytes:
        _check_flat_map(protected_bytes)
    protected = cbor.decode(protected_bytes, max_size=MAX_PROTECTED) if protected_bytes else {}
    if not isinstance(protected, dict):
        raise MalformedData("protected header must be a map")
    if protected.get(ALG) != EDDSA:
        raise MalformedData("only alg EdDSA (-8) is accepted")
    if len(_HEADERS) >= _HEADERS_LIMIT:
        _HEADERS.clear()
    _HEADERS[protected_bytes] = protected
    return protected


def parse_typed(data: bytes, *, typ: str, what: str, error: type[KeysError], max_size: int,
                signed: Callable[[Sign1], None] | None = None) -> tuple[Sign1, dict[str, Any]]:
    """A COSE_Sign1 whose payload is a map that names its type ``typ`` (a revocation list, an enrolment token).
    ``signed``, when given, checks the signature from the frame alone and raises if it does not hold: it runs
    before anything in the payload is decoded (what anyone may send must cost a hash, not a decode). Raises
    ``error`` saying ``what`` was expected."""
    try:
        sign1 = parse_sign1(data, max_size=max_size)
    except KeysError as exc:
        raise error(f"{what} is malformed: {exc.reason}") from exc
    if signed is not None:
        signed(sign1)
    try:
        body = cbor.decode(sign1.payload, max_size=max_size)
    except KeysError as exc:
        raise error(f"{what} is malformed: {exc.reason}") from exc
    if not isinstance(body, dict) or body.get("typ") != typ:
        raise error(f"not {'an' if what[0] in 'aeiou' else 'a'} {what}")
    return sign1, body


__all__ = ["Sign1", "sign1", "sign1_with_header", "assemble_sign1", "protected_header", "parse_sign1", "parse_typed", "sig_structure", "COSE_SIGN1_TAG", "ALG", "KID", "EDDSA"]
