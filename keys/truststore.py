"""The trust store: the roots a node trusts and what they have revoked.

Verifying a certificate costs one Ed25519 verification; the result is cached
by the certificate's hash, so a peer's certificate is checked once and then
only compared against the clock and the revocation lists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Final

from keys.certificate import Member, parse_certificate
from keys.cose import KID, Sign1
from keys.errors import (
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    InvalidSignature,
    MalformedCertificate,
    UnknownCertificate,
    UnknownIssuer,
)
from keys.identity import Verifier
from keys.revocation import RevocationList, parse_revocation_list

# Clocks of two nodes differ; a certificate that became valid a minute from
# now on our clock is accepted.
CLOCK_SKEW: Final = 60
_CACHE_LIMIT: Final = 10_000


class TrustStore:
    """Roots, their latest revocation lists, and a cache of verified certificates."""

    def __init__(self, roots: Iterable[str]) -> None:
        self._roots: dict[str, Verifier] = {did: Verifier.from_did(did) for did in roots}
        self._lists: dict[str, RevocationList] = {}
        self._revoked: set[bytes] = set()
        self._verified: dict[bytes, Member] = {}

    @property
    def roots(self) -> tuple[str, ...]:
        return tuple(self._roots)

    def revocation_lists(self) -> tuple[RevocationList, ...]:
        return tuple(self._lists.values())

    def revocation_version(self, root: str) -> int:
        current = self._lists.get(root)
        return current.version if current else 0

    def is_revoked(self, cert_id: bytes) -> bool:
        return cert_id in self._revoked

    def verify_certificate(self, data: bytes, now: int) -> Member:
        """The member a certificate describes, or a CertificateError.

        Raises:
            MalformedCertificate, UnknownIssuer, InvalidSignature,
            CertificateExpired, CertificateNotYetValid, CertificateRevoked
        """
        member = self._verified.get(hashlib.sha256(data).digest())
        if member is None:
            member = self._verify_signature(data)
        return self._current(member, now)

    def holds(self, cert_hash: bytes) -> bool:
        """Whether a certificate with this SHA-256 has been verified and is still cached."""
        return cert_hash in self._verified

    def member_by_hash(self, cert_hash: bytes, now: int) -> Member:
        """The member of a certificate verified earlier, named by its SHA-256.

        Raises:
            UnknownCertificate (not verified here, or fallen out of the cache),
            CertificateExpired, CertificateNotYetValid, CertificateRevoked
        """
        member = self._verified.get(cert_hash)
        if member is None:
            raise UnknownCertificate("certificate hash names no certificate this node holds")
        return self._current(member, now)

    def _signed_by_root(self, what: str) -> Callable[[Sign1], None]:
        """A check, run on the frame before anything else is decoded, that the kid of ``what`` (a certificate, a
        revocation list) is a root this node trusts, and that this root signed it."""
        def check(sign1: Sign1) -> None:
            kid = sign1.protected.get(KID)
            root = self._roots.get(kid.decode("ascii", "replace")) if isinstance(kid, bytes) else None
            if root is None:
                raise UnknownIssuer(f"{what} was issued by a root this node does not trust")
            try:
                sign1.verify(root)
            except InvalidSignature as exc:
                raise InvalidSignature(f"{what} signature does not verify") from exc
        return check

    def _current(self, member: Member, now: int) -> Member:
        if now > member.expires:
            raise CertificateExpired("membership certificate has expired")
        if now + CLOCK_SKEW < member.not_before:
            raise CertificateNotYetValid("membership certificate is not yet valid")
        if member.cert_id in self._revoked:
            raise CertificateRevoked("membership certificate has been revoked")
        return member

    def _verify_signature(self, data: bytes) -> Member:
        _, member = parse_certificate(data, signed=self._signed_by_root("certificate"))  # its kid names its issuer
        if len(self._verified) >= _CACHE_LIMIT:
            self._verified.clear()
        self._verified[member.cert_hash] = member
        return member

    def apply_revocation_list(self, data: bytes) -> bool:
        """Adopt a revocation list if it is newer than the one held.

        Returns True when the list replaced an older one, False when it was not
        newer (an older or equal version is ignored).

        Raises:
            MalformedCertificate, UnknownIssuer, InvalidSignature
        """
        _, rlist = parse_revocation_list(data, signed=self._signed_by_root("revocation list"))  # its kid names its issuer
        if rlist.version <= self.revocation_version(rlist.issuer):
            return False
        self._lists[rlist.issuer] = rlist
        self._revoked = set().union(*(r.revoked for r in self._lists.values()))
        return True


__all__ = ["TrustStore", "CLOCK_SKEW", "MalformedCertificate"]
