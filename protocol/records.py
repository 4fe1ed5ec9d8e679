"""Signed record versions: every version a source stores, and every view it hands out, is signed by it.

A signed record is a COSE_Sign1 made by the source node (kid = its did, its
certificate at label -65537, as in envelopes) whose payload is

    {"typ": "record", "kind": text, "id": uuid, "version": uint,
     "source": did, "signed_at": uint, "deleted": bool, "data": map / null}

so that a record that travels (as a query result or as evidence) can always
be traced to, and proven to come from, its source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from keys import cose
from keys.certificate import Member
from keys.errors import KeysError
from keys.identity import Identity, Verifier
from keys.truststore import TrustStore
from protocol import codec
from protocol.envelope import CERT_LABEL
from protocol.errors import ErrorCode, RemoteProtocolError
from protocol.messages import check_name, check_uuid

TYPE: Final = "record"
_KEYS: Final = frozenset({"typ", "kind", "id", "version", "source", "signed_at", "deleted", "data"})


@dataclass(frozen=True, slots=True)
class RecordVersion:
    kind: str
    record_id: str
    version: int
    source: str
    signed_at: int
    deleted: bool
    data: dict[str, Any] | None

    @property
    def path(self) -> str:
        return f"{self.kind}/{self.record_id}"


def sign_record(identity: Identity, certificate: bytes, record: RecordVersion) -> bytes:
    check_name(record.kind, "kind")
    check_uuid(record.record_id, "id")
    payload = {
        "typ": TYPE, "kind": record.kind, "id": record.record_id, "version": record.version,
        "source": record.source, "signed_at": record.signed_at, "deleted": record.deleted, "data": record.data,
    }
    header: dict[int | str, Any] = {cose.KID: identity.did.encode("ascii"), CERT_LABEL: certificate}
    return cose.sign1(identity, codec.encode(payload), header)


def _bad(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.MALFORMED, f"signed record: {reason}")


def _parse_payload(payload: Any, signer: str) -> RecordVersion:
    if not isinstance(payload, dict) or set(payload) != _KEYS or payload["typ"] != TYPE:
        raise _bad("payload does not have exactly the record keys")
    kind, record_id, version = payload["kind"], payload["id"], payload["version"]
    source, signed_at, deleted, data = payload["source"], payload["signed_at"], payload["deleted"], payload["data"]
    if not (isinstance(kind, str) and isinstance(record_id, str) and isinstance(version, int) and version >= 1):
        raise _bad("kind, id or version is malformed")
    if not (isinstance(signed_at, int) and isinstance(deleted, bool) and (data is None or isinstance(data, dict))):
        raise _bad("signed_at, deleted or data is malformed")
    if source != signer:
        raise _bad("source is not the signer")
    try:
        check_name(kind, "kind")
        check_uuid(record_id, "id")
    except Exception as exc:
        raise _bad(str(exc)) from exc
    return RecordVersion(kind, record_id, version, source, signed_at, deleted, data)


def verify_record(data: bytes, trust: TrustStore, now: int) -> tuple[RecordVersion, Member]:
    """Verify a signed record: signature, the source's certificate; returns the record and its source."""
    try:
        sign1 = cose.parse_sign1(data)
        signer = sign1.kid.decode("ascii")
        sign1.verify(Verifier.from_did(signer))
    except (KeysError, UnicodeDecodeError) as exc:
        raise RemoteProtocolError(ErrorCode(getattr(exc, "code", "malformed")), f"signed record: {getattr(exc, 'reason', 'bad kid')}") from exc
    cert = sign1.protected.get(CERT_LABEL)
    if not isinstance(cert, bytes):
        raise _bad("carries no certificate")
    try:
        member = trust.verify_certificate(cert, now)
    except KeysError as exc:
        raise RemoteProtocolError(ErrorCode(exc.code), f"signed record: {exc.reason}") from exc
    if member.did != signer:
        raise RemoteProtocolError(ErrorCode.BAD_CERTIFICATE, "signed record: certificate belongs to another node")
    return _parse_payload(codec.decode(sign1.payload), signer), member


__all__ = ["RecordVersion", "sign_record", "verify_record"]
