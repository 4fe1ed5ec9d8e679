"""The signed envelope and the endpoint that makes and checks it.

Wire form (docs/PROTOCOL.md §3): a COSE_Sign1 whose protected header holds
alg EdDSA, the sender's did as kid, and the sender's membership certificate
(label -65537) or, to a peer known to hold it already, the certificate's
SHA-256 (label -65538), and the first 8 bytes of the SHA-256 of the
recipient's certificate when the sender holds it (label -65539, so that the
recipient knows it may name its own by hash); whose payload is a deterministic CBOR map

    {"v": 1, "typ": text, "id": bstr .size 16, "from": did, "to": did / "*",
     "iat": uint, "exp": uint, "trace": 32 lowercase hex, "re": null / {"id", "h"},
     "body": map / bstr (sealed)}

``Endpoint.receive`` checks, in this order and before anything else happens:
size, decoding, signature, certificate (trust store, revocation), recipient,
time window, replay. Then the body is opened and typed.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import Any, Final

from keys import cose
from keys.certificate import Member
from keys.did import did_to_public_key
from keys.errors import KeysError
from keys.identity import Identity, Verifier
from keys.truststore import TrustStore
from protocol import codec
from protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from protocol.messages import MAX_UINT, MESSAGE_TYPES, Error, Message
from protocol.replay import ReplayGuard
from protocol.sealing import BoxCache

VERSION: Final = 1
CERT_LABEL: Final = -65537
CERT_HASH_LABEL: Final = -65538
HELD_LABEL: Final = -65539
HELD_SIZE: Final = 8
_HOLDERS_LIMIT: Final = 10_000
BROADCAST: Final = "*"
MESSAGE_ID_SIZE: Final = 16
DEFAULT_LIFETIME: Final = 60
MAX_LIFETIME: Final = 300
MAX_BROADCAST_LIFETIME: Final = 7 * 24 * 3600
MAX_BROADCAST_SIZE: Final = 16 * 1024  # a certificate of at most 8 KiB, and what is announced with it
CLOCK_SKEW: Final = 30
MEDIA_TYPE: Final = 'application/cose; cose-type="cose-sign1"'
_VERIFIER_CACHE_LIMIT: Final = 10_000
_TRACE: Final = re.compile(r"^[0-9a-f]{32}$")
_KEYS: Final = frozenset({"v", "typ", "id", "from", "to", "iat", "exp", "trace", "re", "body"})


def new_trace_id() -> str:
    return os.urandom(16).hex()


def digest(data: bytes) -> bytes:
    """The hash that binds a reply to its request: SHA-256 of the request's bytes."""
    return hashlib.sha256(data).digest()


@dataclass(frozen=True, slots=True)
class ReplyTo:
    message_id: bytes | None
    request_hash: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    type: str
    message_id: bytes
    sender: str
    recipient: str
    issued_at: int
    expires: int
    trace_id: str
    reply_to: ReplyTo | None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What ``Endpoint.send`` produced: the bytes and what a reply must be bound to."""

    data: bytes
    envelope: Envelope
    message: Message

    @property
    def digest(self) -> bytes:
        return digest(self.data)


@dataclass(frozen=True, slots=True)
class Incoming:
    """A verified message: who sent it (their certificate's claims) and what it says."""

    data: bytes
    envelope: Envelope
    sender: Member
    message: Message
    cert_by_hash: bool = False  # the sender named its certificate by its hash

    @property
    def digest(self) -> bytes:
        return digest(self.data)


def _remote(code: ErrorCode, reason: str, sender: str | None = None, message_id: bytes | None = None,
            envelope: Envelope | None = None) -> RemoteProtocolError:
    return RemoteProtocolError(code, reason, sender=sender, message_id=message_id,
                               trace_id=envelope.trace_id if envelope else None,
                               issued_at=envelope.issued_at if envelope else None)


def _field(payload: dict[str, Any], key: str, kind: type) -> Any:
    value: Any = payload.get(key)
    if not isinstance(value, kind) or (kind is int and not _uint(value)):
        raise _remote(ErrorCode.MALFORMED, f"envelope field {key} is missing or of the wrong type")
    return value


def _uint(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_UINT


def _parse_reply_to(value: Any) -> ReplyTo | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"id", "h"}:
        raise _remote(ErrorCode.MALFORMED, "envelope field re must be a map of id and h")
    mid, h = value["id"], value["h"]
    if not (mid is None or (isinstance(mid, bytes) and len(mid) == MESSAGE_ID_SIZE)):
        raise _remote(ErrorCode.MALFORMED, "re.id must be 16 bytes or null")
    if not (isinstance(h, bytes) and len(h) == 32):
        raise _remote(ErrorCode.MALFORMED, "re.h must be a SHA-256 hash")
    return ReplyTo(mid, h)


def parse_envelope(payload: Any) -> tuple[Envelope, Any]:
    """Check the envelope map's shape; returns the envelope and the raw body."""
    if not isinstance(payload, dict) or set(payload) != _KEYS:
        raise _remote(ErrorCode.MALFORMED, "envelope payload does not have exactly the envelope keys")
    if payload["v"] != VERSION:
        raise _remote(ErrorCode.UNSUPPORTED, f"envelope version {payload['v']!r} is not supported")
    message_id = _field(payload, "id", bytes)
    if len(message_id) != MESSAGE_ID_SIZE:
        raise _remote(ErrorCode.MALFORMED, "message id must be 16 bytes")
    trace_id = _field(payload, "trace", str)
    if not _TRACE.fullmatch(trace_id):
        raise _remote(ErrorCode.MALFORMED, "trace id must be 32 lowercase hex digits")
    envelope = Envelope(
        type=_field(payload, "typ", str),
        message_id=message_id,
        sender=_field(payload, "from", str),
        recipient=_field(payload, "to", str),
        issued_at=_field(payload, "iat", int),
        expires=_field(payload, "exp", int),
        trace_id=trace_id,
        reply_to=_parse_reply_to(payload["re"]),
    )
    return envelope, payload["body"]


class Endpoint:
    """One node's side of the wire: signs and seals what it sends, verifies what it receives.

    Sans-IO: it holds the identity, the node's certificate, the trust store and
    the replay guard, and is handed bytes and ``now``; it never reads a clock.
    """

    def __init__(
        self,
        identity: Identity,
        certificate: bytes,
        trust: TrustStore,
        replay: ReplayGuard | None = None,
        *,
        max_size: int = codec.MAX_MESSAGE_SIZE,
        skew: int = CLOCK_SKEW,
    ) -> None:
        self.trust = trust
        self.replay = replay if replay is not None else ReplayGuard(skew=skew)
        self.max_size = max_size
        self.skew = skew
        self._verifiers: dict[str, Verifier] = {}
        self._held: dict[str, bytes] = {}  # did -> hash of the certificate we verified for it
        self.switch_identity(identity, certificate)

    def switch_identity(self, identity: Identity, certificate: bytes) -> None:
        """Sign and open with a new key or certificate from now on (a renewal or a key rotation)."""
        self.identity = identity
        self.certificate = certificate
        self.boxes = BoxCache(identity)
        self._cert_hash = hashlib.sha256(certificate).digest()
        kid = identity.did.encode("ascii")
        self._headers: dict[bool, dict[int | str, Any]] = {
            False: {cose.KID: kid, CERT_LABEL: certificate},
            True: {cose.KID: kid, CERT_HASH_LABEL: self._cert_hash},
        }
        self._plain = {by_hash: cose.protected_header(h) for by_hash, h in self._headers.items()}
        self._holders: set[str] = set()  # peers whose last message said they hold our certificate
        self._hinted: dict[tuple[bool, bytes], bytes] = {}  # encoded headers with a held hint, per hint

    def holds_our_certificate(self, did: str) -> bool:
        return did in self._holders

    def forget_holder(self, did: str) -> None:
        """The peer answered ``unknown-certificate`` (its cache turned over since it last told us)."""
        self._holders.discard(did)

    def _protected(self, to: str, by_hash: bool) -> bytes:
        held = self._held.get(to)
        if held is None or not self.trust.holds(held):
            return self._plain[by_hash]
        header = self._hinted.get((by_hash, held))
        if header is None:
            if len(self._hinted) >= _HOLDERS_LIMIT:
                self._hinted.clear()
            header = self._hinted[by_hash, held] = cose.protected_header(
                {**self._headers[by_hash], HELD_LABEL: held[:HELD_SIZE]})
        return header

    def _note_peer(self, sign1: cose.Sign1, member: Member, *, broadcast: bool) -> None:
        """Remember which certificate we hold for the sender, and whether it says it holds ours."""
        if len(self._held) >= _HOLDERS_LIMIT:
            self._held.clear()
            self._holders.clear()
        self._held[member.did] = member.cert_hash
        if broadcast:
            return  # relayed to anyone: it says nothing about what its signer holds
        if sign1.protected.get(HELD_LABEL) == self._cert_hash[:HELD_SIZE]:
            self._holders.add(member.did)
        else:
            self._holders.discard(member.did)

    @property
    def did(self) -> str:
        return self.identity.did

    # Sending --------------------------------------------------------------

    def send(
        self,
        message: Message,
        *,
        to: str,
        now: int,
        lifetime: int = DEFAULT_LIFETIME,
        trace_id: str | None = None,
        message_id: bytes | None = None,
        reply_to: ReplyTo | None = None,
        nonce: bytes | None = None,
        cert_by_hash: bool | None = None,
    ) -> Outgoing:
        """Sign (and, for sealed types, encrypt) ``message`` for ``to``.

        The certificate goes by hash when ``cert_by_hash`` says so, or, when it
        is None, when the last message from ``to`` said it holds it; broadcasts
        always carry it whole.
        """
        if message.REPLY and reply_to is None:
            raise LocalProtocolError(ErrorCode.MALFORMED, f"{message.TYPE} is only sent as a reply")
        if to == BROADCAST and not (message.BROADCAST or isinstance(message, Error)):
            raise LocalProtocolError(ErrorCode.MALFORMED, f"{message.TYPE} cannot be broadcast")
        limit = MAX_BROADCAST_LIFETIME if message.BROADCAST else MAX_LIFETIME
        if not 0 < lifetime <= limit:
            raise LocalProtocolError(ErrorCode.MALFORMED, f"lifetime must be 1..{limit} seconds")
        envelope = Envelope(
            type=message.TYPE,
            message_id=message_id if message_id is not None else os.urandom(MESSAGE_ID_SIZE),
            sender=self.did,
            recipient=to,
            issued_at=now,
            expires=now + lifetime,
            trace_id=trace_id if trace_id is not None else new_trace_id(),
            reply_to=reply_to,
        )
        body: Any = message.to_cbor()
        if message.SEALED:
            body = self.boxes.seal(to, codec.encode(body), nonce)
        payload = {
            "v": VERSION,
            "typ": envelope.type,
            "id": envelope.message_id,
            "from": envelope.sender,
            "to": envelope.recipient,
            "iat": envelope.issued_at,
            "exp": envelope.expires,
            "trace": envelope.trace_id,
            "re": None if reply_to is None else {"id": reply_to.message_id, "h": reply_to.request_hash},
            "body": body,
        }
        if cert_by_hash is None:
            cert_by_hash = to in self._holders
        protected = self._plain[False] if to == BROADCAST else self._protected(to, cert_by_hash)
        data = cose.sign1_with_header(self.identity, codec.encode(payload), protected)
        return Outgoing(data, envelope, message)

    def reply(self, request: Incoming, message: Message, *, now: int, nonce: bytes | None = None) -> Outgoing:
        """A reply bound to ``request`` (its id and the hash of its bytes)."""
        return self.send(
            message,
            to=request.envelope.sender,
            now=now,
            trace_id=request.envelope.trace_id,
            reply_to=ReplyTo(request.envelope.message_id, request.digest),
            nonce=nonce,
        )

    def error_reply(self, request_data: bytes, error: RemoteProtocolError, *, now: int) -> Outgoing:
        """A signed error for bytes that failed ``receive``: to the sender once its signature verified (else "*"),
        with the request's trace once its envelope was read (else a new one)."""
        return self.send(
            Error(code=error.code.value, reason=error.reason, rule=error.rule),
            to=error.sender or BROADCAST,
            now=now,
            trace_id=error.trace_id,
            reply_to=ReplyTo(error.message_id, digest(request_data)),
            cert_by_hash=False,
        )

    # Receiving ------------------------------------------------------------

    def receive(self, data: bytes, *, now: int) -> Incoming:
        """Verify a request. Raises RemoteProtocolError with the code of the first failed check."""
        incoming = self._verify(data, now=now, reply=False)
        if incoming.envelope.reply_to is not None or incoming.message.REPLY:
            raise _remote(ErrorCode.UNSUPPORTED, f"{incoming.envelope.type} is not a request",
                          incoming.envelope.sender, incoming.envelope.message_id)
        return incoming

    def receive_reply(self, data: bytes, request: Outgoing, *, now: int) -> Incoming:
        """Verify a reply to ``request``: signed by its recipient and bound to it."""
        return self.receive_reply_to(data, request.data, recipient=request.envelope.recipient,
                                     request_id=request.envelope.message_id, now=now)

    def receive_reply_to(self, data: bytes, request_data: bytes, *, recipient: str, request_id: bytes | None,
                         now: int) -> Incoming:
        """Verify a reply to the envelope ``request_data`` (sent to ``recipient``): signed by it and bound to it."""
        incoming = self._verify(data, now=now, reply=True)
        env = incoming.envelope
        if env.reply_to is None or env.reply_to.request_hash != digest(request_data):
            raise _remote(ErrorCode.MALFORMED, "reply is not bound to the request")
        if env.reply_to.message_id not in (None, request_id):
            raise _remote(ErrorCode.MALFORMED, "reply names another request id")
        if recipient != BROADCAST and env.sender != recipient:
            raise _remote(ErrorCode.WRONG_RECIPIENT, "reply comes from another node than was asked")
        return incoming

    def verify_broadcast(self, data: bytes, *, now: int) -> Incoming:
        """Verify a relayed broadcast (an announcement) with no recipient or replay check."""
        incoming = self._verify(data, now=now, reply=False, relayed=True)
        if not incoming.message.BROADCAST:
            raise _remote(ErrorCode.UNSUPPORTED, "only broadcast messages can be relayed")
        return incoming

    def _verify(self, data: bytes, *, now: int, reply: bool, relayed: bool = False) -> Incoming:
        if len(data) > self.max_size:
            raise _remote(ErrorCode.TOO_LARGE, f"message exceeds {self.max_size} bytes")
        sign1, sender = self._check_signature(data)
        member, by_hash = self._check_certificate(sign1, sender, now)
        try:
            payload = codec.decode(sign1.payload, max_size=self.max_size)
        except RemoteProtocolError as exc:
            raise _remote(exc.code, exc.reason, sender) from exc
        try:
            envelope, body = parse_envelope(payload)
        except RemoteProtocolError as exc:
            raise _remote(exc.code, exc.reason, sender) from exc
        mid = envelope.message_id
        if envelope.sender != sender:
            raise _remote(ErrorCode.BAD_SIGNATURE, "envelope sender is not the signer", sender, mid, envelope)
        cls = MESSAGE_TYPES.get(envelope.type)
        if cls is None:
            raise _remote(ErrorCode.UNSUPPORTED, "unknown message type", sender, mid, envelope)
        if cls.BROADCAST and len(data) > MAX_BROADCAST_SIZE:
            # Every node keeps a broadcast (an announcement) and passes it on within a gossip round's bytes.
            raise _remote(ErrorCode.TOO_LARGE, f"a broadcast is at most {MAX_BROADCAST_SIZE} bytes", sender, mid, envelope)
        self._check_recipient(envelope, cls, reply=reply, relayed=relayed)
        self._check_time(envelope, cls, now)
        guarded = not (cls.BROADCAST or reply)
        try:
            if guarded:
                self.replay.check(sender, mid, now)
            message = self._open_body(cls, envelope, body)
        except RemoteProtocolError as exc:
            raise _remote(exc.code, exc.reason, sender, mid, envelope) from exc
        # Only a fully valid message is remembered, so a refused one changes no state.
        if guarded:
            self.replay.remember(sender, mid, envelope.expires)
        self._note_peer(sign1, member, broadcast=envelope.recipient == BROADCAST)
        return Incoming(data, envelope, member, message, by_hash)

    def _check_signature(self, data: bytes) -> tuple[cose.Sign1, str]:
        try:
            sign1 = cose.parse_sign1(data, max_size=self.max_size)
            sender = sign1.kid.decode("ascii", errors="strict")
            verifier = self._verifier(sender)
        except (KeysError, UnicodeDecodeError) as exc:
            code = getattr(exc, "code", ErrorCode.MALFORMED)
            raise _remote(ErrorCode(code), getattr(exc, "reason", "kid is not a did")) from exc
        try:
            sign1.verify(verifier)
        except KeysError as exc:
            raise _remote(ErrorCode.BAD_SIGNATURE, "envelope signature does not verify") from exc
        return sign1, sender

    def _verifier(self, did: str) -> Verifier:
        verifier = self._verifiers.get(did)
        if verifier is None:
            if len(self._verifiers) >= _VERIFIER_CACHE_LIMIT:
                self._verifiers.clear()
            verifier = self._verifiers[did] = Verifier(did_to_public_key(did))
        return verifier

    def _check_certificate(self, sign1: cose.Sign1, sender: str, now: int) -> tuple[Member, bool]:
        """The sender's member claims, and whether its certificate came by hash."""
        cert = sign1.protected.get(CERT_LABEL)
        cert_hash = sign1.protected.get(CERT_HASH_LABEL)
        try:
            if isinstance(cert, bytes) and cert_hash is None:
                member = self.trust.verify_certificate(cert, now)
            elif cert is None and isinstance(cert_hash, bytes) and len(cert_hash) == 32:
                member = self.trust.member_by_hash(cert_hash, now)
            else:
                raise _remote(ErrorCode.BAD_CERTIFICATE, "envelope must carry its certificate or its 32-byte hash", sender)
        except KeysError as exc:
            raise _remote(ErrorCode(exc.code), exc.reason, sender) from exc
        if member.did != sender:
            raise _remote(ErrorCode.BAD_CERTIFICATE, "certificate belongs to another node", sender)
        return member, cert is None

    def _check_recipient(self, env: Envelope, cls: type[Message], *, reply: bool, relayed: bool) -> None:
        if relayed and env.recipient == BROADCAST:
            return
        if env.recipient == self.did:
            return
        if env.recipient == BROADCAST and (cls.BROADCAST or (reply and cls is Error)):
            return
        raise _remote(ErrorCode.WRONG_RECIPIENT, "message is addressed to another node", env.sender, env.message_id, env)

    def _check_time(self, env: Envelope, cls: type[Message], now: int) -> None:
        limit = MAX_BROADCAST_LIFETIME if cls.BROADCAST else MAX_LIFETIME
        if env.expires <= env.issued_at or env.expires - env.issued_at > limit:
            raise _remote(ErrorCode.MALFORMED, f"message lifetime must be 1..{limit} seconds", env.sender, env.message_id, env)
        if env.issued_at > now + self.skew:
            raise _remote(ErrorCode.NOT_YET_VALID, f"message is issued {env.issued_at - now} s in the future",
                          env.sender, env.message_id, env)
        if now > env.expires + self.skew:
            raise _remote(ErrorCode.EXPIRED, f"message expired {now - env.expires} s ago", env.sender, env.message_id, env)

    def _open_body(self, cls: type[Message], env: Envelope, body: Any) -> Message:
        try:
            if cls.SEALED:
                if not isinstance(body, bytes):
                    raise _remote(ErrorCode.MALFORMED, f"{cls.TYPE} body must be sealed")
                body = codec.decode(self.boxes.open(env.sender, body), max_size=self.max_size)
            return cls.from_cbor(body)
        except RemoteProtocolError as exc:
            raise _remote(exc.code, exc.reason, env.sender, env.message_id) from exc


__all__ = [
    "Endpoint", "Envelope", "Incoming", "Outgoing", "ReplyTo", "parse_envelope", "digest", "new_trace_id",
    "VERSION", "CERT_LABEL", "CERT_HASH_LABEL", "HELD_LABEL", "BROADCAST", "MEDIA_TYPE", "MAX_LIFETIME", "DEFAULT_LIFETIME", "CLOCK_SKEW",
    "MAX_BROADCAST_SIZE",
]
