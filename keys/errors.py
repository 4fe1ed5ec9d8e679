"""The error family of the keys layer.

Every error carries a stable ``code`` (the same words the wire protocol uses)
and a reason that is safe to show to a peer: it never holds key material or
personal data.
"""

from __future__ import annotations


class KeysError(Exception):
    """Base of every error raised by ``keys``."""

    code = "malformed"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedData(KeysError):
    """Bytes that are not well-formed deterministic CBOR or COSE."""

    code = "malformed"


class TooLarge(MalformedData):
    """Input above the configured size limit."""

    code = "too-large"


class MalformedKey(KeysError):
    """A key, key file or did that cannot be used."""

    code = "malformed"


class InsecureKeyFile(MalformedKey):
    """A key file that group or others may read."""

    code = "insecure-key-file"


class InvalidSignature(KeysError):
    """A signature that does not verify."""

    code = "bad-signature"


class InvalidIdentifier(KeysError):
    """A BSN, AGB, UZOVI or KVK number that fails its check."""

    code = "malformed"


class CertificateError(KeysError):
    """Base for certificate and revocation problems."""


class UnknownIssuer(CertificateError):
    code = "unknown-issuer"


class CertificateExpired(CertificateError):
    code = "expired"


class CertificateNotYetValid(CertificateError):
    code = "not-yet-valid"


class CertificateRevoked(CertificateError):
    code = "revoked"


class MalformedCertificate(CertificateError):
    code = "malformed"


class UnknownCertificate(CertificateError):
    """A certificate named only by its hash, which this store has not verified (or no longer holds)."""

    code = "unknown-certificate"


__all__ = [
    "KeysError",
    "MalformedData",
    "TooLarge",
    "MalformedKey",
    "UnknownCertificate",
    "InsecureKeyFile",
    "InvalidSignature",
    "InvalidIdentifier",
    "CertificateError",
    "UnknownIssuer",
    "CertificateExpired",
    "CertificateNotYetValid",
    "CertificateRevoked",
    "MalformedCertificate",
]
