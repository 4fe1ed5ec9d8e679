"""The error family of the protocol layer (after h11's ``_util.py``).

``LocalProtocolError``: we were about to break the protocol (a bug or bad
input from our own user). ``RemoteProtocolError``: the peer broke it. Both
carry a stable ``code`` from ``ErrorCode`` and a ``reason`` that is safe to
send to the peer: it never holds personal data or key material.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class ErrorCode(StrEnum):
    MALFORMED = "malformed"
    TOO_LARGE = "too-large"
    BAD_SIGNATURE = "bad-signature"
    BAD_CERTIFICATE = "bad-certificate"
    UNKNOWN_ISSUER = "unknown-issuer"
    UNKNOWN_CERTIFICATE = "unknown-certificate"
    REVOKED = "revoked"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    REPLAY = "replay"
    WRONG_RECIPIENT = "wrong-recipient"
    UNSUPPORTED = "unsupported"
    DENIED = "denied"
    NOT_FOUND = "not-found"
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"


# The HTTP status a node answers with; the signed error body is the real answer.
STATUS_HINTS: Final[dict[ErrorCode, int]] = {
    ErrorCode.MALFORMED: 400,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.BAD_SIGNATURE: 401,
    ErrorCode.BAD_CERTIFICATE: 401,
    ErrorCode.UNKNOWN_ISSUER: 401,
    ErrorCode.UNKNOWN_CERTIFICATE: 401,
    ErrorCode.REVOKED: 401,
    ErrorCode.EXPIRED: 401,
    ErrorCode.NOT_YET_VALID: 401,
    ErrorCode.REPLAY: 409,
    ErrorCode.WRONG_RECIPIENT: 421,
    ErrorCode.UNSUPPORTED: 400,
    ErrorCode.DENIED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.UNAVAILABLE: 503,
}


class ProtocolError(Exception):
    """Abstract base: construct a LocalProtocolError or RemoteProtocolError."""

    def __init__(self, code: ErrorCode | str, reason: str, *, rule: str | None = None) -> None:
        if type(self) is ProtocolError:
            raise TypeError("ProtocolError is abstract; raise Local- or RemoteProtocolError")
        super().__init__(f"{code}: {reason}")
        self.code = ErrorCode(code)
        self.reason = reason
        self.rule = rule

    @property
    def status_hint(self) -> int:
        return STATUS_HINTS[self.code]


class LocalProtocolError(ProtocolError):
    """We tried to send something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """A peer sent something the protocol does not allow.

    ``sender``, ``message_id`` and ``trace_id`` are filled in once known, so
    that the node can still address a signed error reply and keep the trace;
    ``issued_at`` is the peer's ``iat`` when the time check failed, so that
    the node can tell its operator how far the two clocks differ.
    """

    def __init__(
        self,
        code: ErrorCode | str,
        reason: str,
        *,
        rule: str | None = None,
        sender: str | None = None,
        message_id: bytes | None = None,
        trace_id: str | None = None,
        issued_at: int | None = None,
    ) -> None:
        super().__init__(code, reason, rule=rule)
        self.sender = sender
        self.message_id = message_id
        self.trace_id = trace_id
        self.issued_at = issued_at


__all__ = ["ErrorCode", "STATUS_HINTS", "ProtocolError", "LocalProtocolError", "RemoteProtocolError"]
