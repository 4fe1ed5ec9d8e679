"""did:key for Ed25519 public keys (multicodec 0xed01, multibase base58btc)."""

from __future__ import annotations

from functools import lru_cache
from typing import Final

import base58

from keys.errors import MalformedKey

DID_PREFIX: Final = "did:key:z"
_ED25519_MULTICODEC: Final = b"\xed\x01"
_X25519_MULTICODEC: Final = b"\xec\x01"
PUBLIC_KEY_SIZE: Final = 32


def public_key_to_did(public_key: bytes) -> str:
    """The did:key of a raw 32-byte Ed25519 public key."""
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise MalformedKey("an Ed25519 public key is 32 bytes")
    return DID_PREFIX + base58.b58encode(_ED25519_MULTICODEC + public_key).decode("ascii")


def did_to_public_key(did: str) -> bytes:
    """The raw Ed25519 public key inside a did:key.

    Raises:
        MalformedKey: not a did:key, not base58btc, or not an Ed25519 key.
    """
    if not isinstance(did, str) or not did.startswith(DID_PREFIX) or len(did) > 64:
        raise MalformedKey("not an Ed25519 did:key")
    return _decoded(did)


# Every message, record and certificate names its signer by did: decoding base58 in Python costs ~8 µs, and a node
# meets the same few thousand dids again and again. A did that fails raises, and is not kept.
@lru_cache(maxsize=4096)
def _decoded(did: str) -> bytes:
    try:
        raw = base58.b58decode(did[len(DID_PREFIX) :])
    except ValueError as exc:
        raise MalformedKey("did:key is not valid base58btc") from exc
    if raw[:2] != _ED25519_MULTICODEC or len(raw) != 2 + PUBLIC_KEY_SIZE:
        raise MalformedKey("did:key does not hold an Ed25519 public key")
    return raw[2:]


def x25519_key_id(public_key: bytes) -> str:
    """The multibase form of an X25519 public key (as did:key documents use)."""
    return "z" + base58.b58encode(_X25519_MULTICODEC + public_key).decode("ascii")


def is_did(value: object) -> bool:
    try:
        did_to_public_key(value)  # type: ignore[arg-type]
    except MalformedKey:
        return False
    return True


__all__ = ["public_key_to_did", "did_to_public_key", "x25519_key_id", "is_did", "DID_PREFIX"]
