"""Signed record versions: every version a source stores, and every view it hands out, is signed by it.

A signed record is a COSE_Sign1 made by the source node (kid = its did, its
certificate at label -65537, as in envelopes) whose payload is

    {"typ": "record", "kind": text, "id": uuid, "version": uint,
     "source": did, "signed_at": uint, "deleted": bool, "data": bstr .cbor map / null}

``data`` is embedded CBOR (as a COSE payload is), so a source encodes a
record's content once and stores the very bytes it signed.

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


def record_header(did: str, certificate: bytes) -> bytes:
    """The protected header of every record a source signs under ``certificate``."""
    return cose.protected_header({cose.KID: did.encode("ascii"), CERT_LABEL: certificate})


def record_payload(record: RecordVersion, encoded_data: bytes | None = None) -> bytes:
    """The signed payload of ``record``; pass ``encoded_data`` when the content is already encoded."""
    check_name(record.kind, "kind")
    check_uuid(record.record_id, "id")
    if record.data is not None and encoded_data is None:
        encoded_data = codec.encode(record.data)
    return codec.encode({
        "typ": TYPE, "kind": record.kind, "id": record.record_id, "version": record.version,
        "source": record.source, "signed_at": record.signed_at, "deleted": record.deleted,
        "data": None if record.data is None else encoded_data,
    })


class RecordSigner:
    """Signs record versions for one source; the protected header is encoded once.

    Encoding is deterministic and Ed25519 signatures are too, so a source may keep
    only the 64-byte signature (:meth:`signature`) of a version and rebuild the very
    bytes it signed with :func:`assemble_record` from the content it stores anyway.
    """

    def __init__(self, identity: Identity, certificate: bytes) -> None:
        self.identity = identity
        self.header = record_header(identity.did, certificate)

    def sign(self, record: RecordVersion, encoded_data: bytes | None = None) -> bytes:
        """Sign ``record``; pass ``encoded_data`` when the content is already encoded."""
        return cose.sign1_with_header(self.identity, record_payload(record, encoded_data), self.header)

    def signature(self, record: RecordVersion, encoded_data: bytes | None = None) -> bytes:
        """Only the signature of ``record``, for :func:`assemble_record`."""
        payload = record_payload(record, encoded_data)
        return self.identity.sign(cose.sig_structure(self.header, payload, b""))


def assemble_record(header: bytes, record: RecordVersion, encoded_data: bytes | None, signature: bytes) -> bytes:
    """The signed record whose signature was made earlier under ``header``: byte for byte what signing gave."""
    if len(signature) != cose.SIGNATURE_SIZE:
        raise _bad("a stored signature is 64 bytes")
    return cose.assemble_sign1(header, record_payload(record, encoded_data), signature)


def signing_certificate(data: bytes) -> bytes | None:
    """The certificate a signed record carries (not checked: verify_record does that)."""
    try:
        cert = cose.parse_sign1(data).protected.get(CERT_LABEL)
    except KeysError:
        return None
    return cert if isinstance(cert, bytes) else None


def sign_record(identity: Identity, certificate: bytes, record: RecordVersion) -> bytes:
    return RecordSigner(identity, certificate).sign(record)


def _bad(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.MALFORMED, f"signed record: {reason}")


def _parse_payload(payload: Any, signer: str) -> RecordVersion:
    if not isinstance(payload, dict) or set(payload) != _KEYS or payload["typ"] != TYPE:
        raise _bad("payload does not have exactly the record keys")
    kind, record_id, version = payload["kind"], payload["id"], payload["version"]
    source, signed_at, deleted, data = payload["source"], payload["signed_at"], payload["deleted"], payload["data"]
    if not (isinstance(kind, str) and isinstance(record_id, str) and isinstance(version, int) and version >= 1):
        raise _bad("kind, id or version is malformed")
    if not (isinstance(signed_at, int) and isinstance(deleted, bool) and (data is None or isinstance(data, bytes))):
        raise _bad("signed_at, deleted or data is malformed")
    if data is not None:
        data = codec.decode(data)
        if not isinstance(data, dict):
            raise _bad("data must be a map")
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


__all__ = ["RecordVersion", "RecordSigner", "record_header", "record_payload", "assemble_record", "sign_record", "verify_record", "signing_certificate"]
