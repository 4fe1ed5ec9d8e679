"""Ed25519 identities and the X25519 keys derived from them.

Private key material lives only inside ``Identity``; its repr names the did
and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.public
import nacl.signing

from keys.did import did_to_public_key, public_key_to_did
from keys.errors import InvalidSignature, MalformedKey

SEED_SIZE: Final = 32
SIGNATURE_SIZE: Final = 64


class Identity:
    """An Ed25519 key pair: signs, and derives its X25519 key for sealed boxes."""

    __slots__ = ("_signing_key", "public_key", "did", "_box_key")

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        self._signing_key = signing_key
        self.public_key: bytes = bytes(signing_key.verify_key)
        self.did: str = public_key_to_did(self.public_key)
        self._box_key: nacl.public.PrivateKey | None = None

    @classmethod
    def generate(cls) -> Identity:
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        if not isinstance(seed, bytes) or len(seed) != SEED_SIZE:
            raise MalformedKey("an Ed25519 seed is 32 bytes")
        return cls(nacl.signing.SigningKey(seed))

    def seed(self) -> bytes:
        """The 32-byte private seed; only for writing the key file."""
        return bytes(self._signing_key)

    def sign(self, message: bytes) -> bytes:
        """A detached 64-byte Ed25519 signature."""
        return self._signing_key.sign(message).signature

    def derive_key(self, purpose: bytes, salt: bytes) -> bytes:
        """A 32-byte key of this identity's own for ``purpose`` (at most 16 bytes), another for every ``salt`` (16
        bytes): BLAKE2b keyed with the seed, so it tells nothing of the seed, of signatures or of other keys."""
        if len(purpose) > 16 or len(salt) != 16:
            raise MalformedKey("a derived key takes a purpose of at most 16 bytes and a salt of 16")
        return nacl.hash.blake2b(b"", digest_size=32, key=self.seed(), salt=salt, person=purpose,
                                 encoder=nacl.encoding.RawEncoder)

    def box_private_key(self) -> nacl.public.PrivateKey:
        """The X25519 private key derived from this identity (RFC 7748 birational map)."""
        if self._box_key is None:
            self._box_key = self._signing_key.to_curve25519_private_key()
        return self._box_key

    def verifier(self) -> Verifier:
        return Verifier(self.public_key)

    def __repr__(self) -> str:
        return f"Identity({self.did})"


@dataclass(frozen=True, slots=True)
class Verifier:
    """The public half of an identity."""

    public_key: bytes

    @classmethod
    def from_did(cls, did: str) -> Verifier:
        return cls(did_to_public_key(did))

    @property
    def did(self) -> str:
        return public_key_to_did(self.public_key)

    def verify(self, message: bytes, signature: bytes) -> None:
        """Raises InvalidSignature unless ``signature`` is valid for ``message``."""
        if len(signature) != SIGNATURE_SIZE:
            raise InvalidSignature("signature has the wrong length")
        try:
            nacl.signing.VerifyKey(self.public_key).verify(message, signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError) as exc:
            raise InvalidSignature("signature does not verify") from exc

    def box_public_key(self) -> nacl.public.PublicKey:
        """The X25519 public key derived from this Ed25519 key."""
        try:
            return nacl.signing.VerifyKey(self.public_key).to_curve25519_public_key()
        except (nacl.exceptions.CryptoError, ValueError) as exc:
            raise MalformedKey("public key cannot be converted to X25519") from exc


__all__ = ["Identity", "Verifier", "SEED_SIZE", "SIGNATURE_SIZE"]
