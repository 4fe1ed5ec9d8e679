"""Typed, frozen messages: what the network says, one class per message type.

Each class maps one-to-one onto the CBOR body of an envelope: the wire keys
are the field names, every field is always present (``null`` where empty),
and unknown keys are refused. A message validates itself when constructed
(``LocalProtocolError``) and when decoded (``RemoteProtocolError``).
"""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeVar, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from keys.certificate import BSN_KEY_SIZE
from keys.did import is_did
from protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from protocol.events import EVENT_RULES, ID_TYPES, MELDING_EVENT

MAX_TEXT: Final = 4096
MAX_URL: Final = 2048  # what browsers and proxies take; a node's endpoint is far shorter
MAX_UINT: Final = 2**63 - 1  # every integer in a body is 0..MAX_UINT: what a store keeps as a signed 64-bit integer
MAX_TIME: Final = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second a calendar date can name
MAX_ITEMS: Final = 10_000
MAX_ANNOUNCEMENTS: Final = 256
MAX_ENDPOINTS: Final = 8  # a node announces one; a few more for its other networks (only the first is called)
MAX_SAMPLE: Final = 16
MAX_BATCH: Final = 64  # notifications in one `notifications` message, queries in one `queries` message
MAX_PINS: Final = 512  # pinned audit heads in one `witness-receipt` (~57 kB)
# Gossip table geometry (protocol/gossip.py): 64 buckets, an 8-byte fingerprint each, a 16-byte hash of them all.
BUCKETS: Final = 64
FINGERPRINT_SIZE: Final = 8
SUMMARY_SIZE: Final = BUCKETS * FINGERPRINT_SIZE
TABLE_HASH_SIZE: Final = 16
UUID4: Final = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")  # a lowercase UUID v4
_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_.:/-]{0,127}$")

M = TypeVar("M", bound="Part")


def _fail(reason: str) -> LocalProtocolError:
    return LocalProtocolError(ErrorCode.MALFORMED, reason)


def check_uuid(value: str, name: str) -> None:
    if not UUID4.fullmatch(value):
        raise _fail(f"{name} must be a lowercase UUID v4")


def check_did(value: str, name: str) -> None:
    if not is_did(value):
        raise _fail(f"{name} must be an Ed25519 did:key")


def _check_batch(items: tuple[Any, ...], message: str, what: str) -> None:
    if not 0 < len(items) <= MAX_BATCH:
        raise _fail(f"{message} carries 1 to {MAX_BATCH} {what}")


def check_name(value: str, name: str) -> None:
    if not _NAME.fullmatch(value):
        raise _fail(f"{name} is not a valid name")


def check_url(value: str, name: str) -> None:
    """An http(s) URL with a host, in printable ASCII without spaces: a node calls it, and may name it in its log
    (a line break or a control character there would forge or hide a line). A name of another script is written
    in its ASCII form (IDNA), as DNS has it. It is a base a node appends its own paths to, so it has no query, no
    fragment and no user: with those a member could steer another node to any path of a service it reaches (what
    follows a '?' or '#' is no longer the path) or make it send credentials."""
    ok = (value.startswith(("http://", "https://")) and len(value) <= MAX_URL and value.isascii()
          and value.isprintable() and not any(c in value for c in " ?#@"))
    if ok:
        try:
            ok = bool(urlsplit(value).hostname)
        except ValueError:  # a malformed port or IPv6 literal
            ok = False
    if not ok:
        raise _fail(f"{name} must be an http(s) URL")


_INT_FIELDS: dict[type, tuple[str, ...]] = {}


def _int_fields(cls: type) -> tuple[str, ...]:
    names = _INT_FIELDS.get(cls)
    if names is None:
        names = _INT_FIELDS[cls] = tuple(name for name, hint in _hints(cls).items() if hint is int or hint == int | None)
    return names


class Part:
    """A frozen dataclass that (de)serialises itself by its type hints."""

    # Fields a peer of an earlier version leaves out: None when absent, and left out when None.
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        for name in _int_fields(type(self)):
            value = getattr(self, name)
            if type(value) is int and not 0 <= value <= MAX_UINT:
                raise _fail(f"{name} must be 0..2**63-1")
        self.validate()

    def validate(self) -> None:
        """Check semantics beyond types; raise LocalProtocolError."""

    def to_cbor(self) -> dict[str, Any]:
        out = {name: _dump(getattr(self, name)) for name in _field_names(type(self))}
        for name in self.OPTIONAL:
            if out[name] is None:
                del out[name]
        return out

    @classmethod
    def from_cbor(cls: type[M], value: Any) -> M:
        """Build from decoded CBOR; RemoteProtocolError on anything unexpected."""
        return _load_part(cls, value, cls.__name__)


class Message(Part):
    TYPE: ClassVar[str]
    SEALED: ClassVar[bool] = False  # body carries personal data: encrypted to the recipient
    BROADCAST: ClassVar[bool] = False  # addressed to "*", relayed as is, exempt from replay
    REPLY: ClassVar[bool] = False  # only valid as an answer bound to a request


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


_PLAIN: Final = (str, bytes, int, bool, type(None))


def _dump(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, Part):
        return value.to_cbor()
    if isinstance(value, tuple):
        return [v if type(v) in _PLAIN else _dump(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _dump(v) for k, v in value.items()}
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = get_type_hints(cls)
    return hints


def _bad(path: str, what: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.MALFORMED, f"{path}: {what}")


Loader = Callable[[Any, str], Any]
_LOADERS: dict[type, list[tuple[str, Loader]]] = {}


def _loaders(cls: type) -> list[tuple[str, Loader]]:
    """Per class, one loader per field, built once from the type hints."""
    loaders = _LOADERS.get(cls)
    if loaders is None:
        hints = _hints(cls)
        loaders = _LOADERS[cls] = [(f.name, _compile(hints[f.name])) for f in dataclasses.fields(cls)]
    return loaders


def _load_part(cls: type[M], value: Any, path: str) -> M:
    if not isinstance(value, dict):
        raise _bad(path, "expected a map")
    loaders = _loaders(cls)
    if len(value) != len(loaders) or any(name not in value for name, _ in loaders):
        names = {name for name, _ in loaders}
        missing, extra = names - set(value) - cls.OPTIONAL, set(value) - names
        if missing or extra:
            # A peer's own keys are not named back: a reason reaches the receiver's log (node/server/app.py)
            detail = f"missing {sorted(missing)}" if missing else f"unknown keys (known: {sorted(names)})"
            raise _bad(path, detail)
        loaders = [(name, load) for name, load in loaders if name in value]
    kwargs = {name: load(value[name], f"{path}.{name}") for name, load in loaders}
    try:
        return cls(**kwargs)
    except LocalProtocolError as exc:
        raise RemoteProtocolError(exc.code, exc.reason) from exc


def _compile(tp: Any) -> Loader:
    origin = get_origin(tp)
    if tp is Any:
        return lambda value, path: value
    if origin in (Union, types.UnionType):
        (inner_type,) = [a for a in get_args(tp) if a is not type(None)]
        inner = _compile(inner_type)
        return lambda value, path: None if value is None else inner(value, path)
    if origin is tuple:
        item = _compile(get_args(tp)[0])

        def load_tuple(value: Any, path: str) -> Any:
            if not isinstance(value, list) or len(value) > MAX_ITEMS:
                raise _bad(path, "expected an array")
            return tuple(item(v, f"{path}[]") for v in value)

        return load_tuple
    if origin is dict:
        key_type, value_type = get_args(tp)
        item = _compile(value_type)

        def load_dict(value: Any, path: str) -> Any:
            if not isinstance(value, dict) or not all(isinstance(k, key_type) for k in value):
                raise _bad(path, "expected a map with text keys")
            return {k: item(v, f"{path}.*") for k, v in value.items()}  # the peer's key is not named back

        return load_dict
    if isinstance(tp, type) and issubclass(tp, Part):
        return lambda value, path: _load_part(tp, value, path)
    return lambda value, path: _load_scalar(tp, value, path)


def _load_scalar(tp: Any, value: Any, path: str) -> Any:
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_UINT
    elif tp is str:
        ok = isinstance(value, str) and len(value) <= MAX_TEXT
    elif tp is bytes:
        ok = isinstance(value, bytes)
    else:  # pragma: no cover - a message class with an unsupported field type
        raise TypeError(f"unsupported field type {tp!r}")
    if not ok:
        raise _bad(path, f"expected {tp.__name__}")
    return value


# -- parts -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Subject(Part):
    """One changed record: ``subject`` is the parent object, ``record_id`` the record."""

    subject: str
    record_id: str

    def validate(self) -> None:
        for name in ("subject", "record_id"):
            value = getattr(self, name)
            kind, _, ident = value.partition("/")
            check_name(kind, name)
            check_uuid(ident, name)


@dataclass(frozen=True, kw_only=True, slots=True)
class DigestEntry(Part):
    """One node in a gossip digest: the first 8 bytes of SHA-256(did), and its announcement's seq."""

    id: bytes
    seq: int

    def validate(self) -> None:
        if len(self.id) != 8:
            raise _fail("digest ids are 8 bytes")
        if self.seq < 0:
            raise _fail("seq must not be negative")


# -- messages ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Announcement(Message):
    """Who a node is, where it listens and what it holds; signed by that node."""

    TYPE: ClassVar[str] = "announcement"
    BROADCAST: ClassVar[bool] = True

    seq: int
    endpoints: tuple[str, ...]
    registers: tuple[str, ...]
    templates: tuple[str, ...]
    events: tuple[str, ...]

    def validate(self) -> None:
        if self.seq < 0:
            raise _fail("seq must not be negative")
        if not 0 < len(self.endpoints) <= MAX_ENDPOINTS:
            raise _fail(f"an announcement names 1 to {MAX_ENDPOINTS} endpoints")
        for endpoint in self.endpoints:
            check_url(endpoint, "an endpoint")
        for name in self.registers + self.templates + self.events:
            check_name(name, "register, template or event")


@dataclass(frozen=True, kw_only=True, slots=True)
class PeerExchange(Message):
    """Gossip (docs/PROTOCOL.md §4.1), one step of an exchange: the table hash, bucket fingerprints,
    a digest (of whole ``buckets``, or rumors when ``buckets`` is empty), the ids wanted, signed
    announcements, how many random announcements are asked for, and revocation list versions."""

    TYPE: ClassVar[str] = "peer-exchange"

    hash: bytes | None
    summary: bytes | None
    digest: tuple[DigestEntry, ...]
    buckets: tuple[int, ...]
    want: tuple[bytes, ...]
    announcements: tuple[bytes, ...]
    sample: int
    revocations: dict[str, int]

    def validate(self) -> None:
        if self.hash is not None and len(self.hash) != TABLE_HASH_SIZE:
            raise _fail(f"hash is {TABLE_HASH_SIZE} bytes")
        if self.summary is not None and len(self.summary) != SUMMARY_SIZE:
            raise _fail(f"summary is {SUMMARY_SIZE} bytes")
        if len(set(self.buckets)) != len(self.buckets) or not all(0 <= b < BUCKETS for b in self.buckets):
            raise _fail(f"buckets are distinct numbers below {BUCKETS}")
        if any(len(i) != 8 for i in self.want):
            raise _fail("wanted ids are 8 bytes")
        for root in self.revocations:
            check_did(root, "revocations")
        if len(self.announcements) > MAX_ANNOUNCEMENTS:
            raise _fail(f"at most {MAX_ANNOUNCEMENTS} announcements per exchange")
        if not 0 <= self.sample <= MAX_SAMPLE:
            raise _fail(f"sample is 0..{MAX_SAMPLE}")


@dataclass(frozen=True, kw_only=True, slots=True)
class PeerExchangeResult(PeerExchange):
    """The answer to a PeerExchange, with the same fields and ``held``: how many announcements the
    answering node's table holds (an asker of a young network learns its size from it). A node of an
    earlier version leaves ``held`` out."""

    TYPE: ClassVar[str] = "peer-exchange-result"
    REPLY: ClassVar[bool] = True
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"held"})

    held: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Query(Message):
    """A templated read: the template name, its parameters and any evidence."""

    TYPE: ClassVar[str] = "query"
    SEALED: ClassVar[bool] = True
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"bsn_key"})

    template: str
    params: dict[str, str]
    evidence: tuple[bytes, ...]
    history: bool
    bsn_key: bytes | None = None  # a client naming his own BSN: the key of his certificate's commitment to it

    def validate(self) -> None:
        check_name(self.template, "template")
        for key in self.params:
            check_name(key, "parameter name")
        _check_bsn_key(self.bsn_key)


@dataclass(frozen=True, kw_only=True, slots=True)
class QueryResult(Message):
    """The records a query may see, each a record version signed by its source, and ``evidence``: signed
    records from other sources that back them (the earlier steps of an Overdracht chain the answering node
    holds), for the requester to present in turn."""

    TYPE: ClassVar[str] = "query-result"
    SEALED: ClassVar[bool] = True
    REPLY: ClassVar[bool] = True

    records: tuple[bytes, ...]
    evidence: tuple[bytes, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Subscribe(Message):
    """A voluntary subscription. A client subscribes to changes of his own records: ``bsn`` names him (the
    source checks it against his certificate), ``endpoint`` is where his node, which no peer table holds,
    receives the notifications. His gemachtigde subscribes to his records the same way, with the signed machtiging
    (a Toestemming) he gave her: the notifications then go to her node."""

    TYPE: ClassVar[str] = "subscribe"
    SEALED: ClassVar[bool] = True
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"bsn_key", "machtiging"})

    events: tuple[str, ...]
    bsn: str | None = None
    endpoint: str | None = None
    bsn_key: bytes | None = None  # the key of his certificate's BSN commitment (keys.BsnCommitment)
    machtiging: bytes | None = None

    def validate(self) -> None:
        if not self.events:
            raise _fail("subscribe needs at least one event type")
        for i, event in enumerate(self.events):
            if event not in EVENT_RULES:
                raise _fail(f"events[{i}] is not an event type")
        if self.bsn is not None and not (len(self.bsn) == 9 and self.bsn.isascii() and self.bsn.isdigit()):
            raise _fail("bsn must be 9 digits")
        if self.endpoint is not None:
            check_url(self.endpoint, "endpoint")
        _check_bsn_key(self.bsn_key)


@dataclass(frozen=True, kw_only=True, slots=True)
class Consent(Message):
    """A client hands the party he consents to the consents he signed (signed Toestemming records), to present
    as evidence at the sources he named."""

    TYPE: ClassVar[str] = "consent"
    SEALED: ClassVar[bool] = True

    consents: tuple[bytes, ...]

    def validate(self) -> None:
        if not 0 < len(self.consents) <= 16:
            raise _fail("a consent message carries 1 to 16 consents")


@dataclass(frozen=True, kw_only=True, slots=True)
class Unsubscribe(Message):
    TYPE: ClassVar[str] = "unsubscribe"

    subscription_id: str

    def validate(self) -> None:
        check_uuid(self.subscription_id, "subscription_id")


@dataclass(frozen=True, kw_only=True, slots=True)
class Notification(Message):
    """zendNotificatie: ids only, never the record."""

    TYPE: ClassVar[str] = "notification"

    notification_id: str
    event_type: str
    timestamp: int
    sender_id_type: str
    sender_id: str
    receiver_id_type: str
    receiver_id: str
    subscription_id: str | None
    subjects: tuple[Subject, ...]

    def validate(self) -> None:
        check_uuid(self.notification_id, "notification_id")
        if self.event_type not in EVENT_RULES:
            raise _fail("unknown event type")
        if self.sender_id_type not in ID_TYPES or self.receiver_id_type not in ID_TYPES:
            raise _fail("id types must be one of " + ", ".join(ID_TYPES))
        if self.subscription_id is not None:
            check_uuid(self.subscription_id, "subscription_id")
        if not self.subjects:
            raise _fail("a notification names at least one subject")
        rule = EVENT_RULES[self.event_type]
        for subject in self.subjects:
            if subject.subject.partition("/")[0] != rule.subject_kind:
                raise _fail(f"{self.event_type} is about a {rule.subject_kind}")
            if subject.record_id.partition("/")[0] not in rule.record_kinds:
                raise _fail(f"{self.event_type} names a changed {' or '.join(rule.record_kinds)}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Ack(Message):
    """A signed receipt: ``ref`` names what was accepted (notification, melding, subscription)."""

    TYPE: ClassVar[str] = "ack"
    REPLY: ClassVar[bool] = True

    ref: str
    status: str

    def validate(self) -> None:
        if self.status not in ("accepted", "duplicate"):
            raise _fail("status must be accepted or duplicate")


@dataclass(frozen=True, kw_only=True, slots=True)
class Notifications(Message):
    """Several notifications to one receiver in one signed message: each is checked, stored and acknowledged on
    its own, so one the receiver refuses does not hold up the others."""

    TYPE: ClassVar[str] = "notifications"

    notifications: tuple[Notification, ...]

    def validate(self) -> None:
        _check_batch(self.notifications, "a notifications message", "notifications")
        if len({n.notification_id for n in self.notifications}) != len(self.notifications):
            raise _fail("a notification id appears twice")


@dataclass(frozen=True, kw_only=True, slots=True)
class Receipt(Part):
    """The outcome of one notification of a batch: ``accepted`` or ``duplicate`` as an ``ack`` says, or
    ``refused`` with the error code and reason a single notification would have had."""

    ref: str
    status: str
    code: str | None
    reason: str | None

    def validate(self) -> None:
        if self.status not in ("accepted", "duplicate", "refused"):
            raise _fail("status must be accepted, duplicate or refused")
        if (self.status == "refused") != (self.code is not None and self.reason is not None):
            raise _fail("a refused receipt, and only that, has a code and a reason")
        if self.code is not None and self.code not in {c.value for c in ErrorCode}:
            raise _fail("unknown error code")


@dataclass(frozen=True, kw_only=True, slots=True)
class Receipts(Message):
    """The answer to ``notifications``: one receipt per notification, in the same order."""

    TYPE: ClassVar[str] = "receipts"
    REPLY: ClassVar[bool] = True

    receipts: tuple[Receipt, ...]

    def validate(self) -> None:
        _check_batch(self.receipts, "a receipts message", "receipts")


@dataclass(frozen=True, kw_only=True, slots=True)
class Queries(Message):
    """Several templated reads in one sealed message (a receiver fetching back what a batch of notifications is
    about): each is decided, audited and answered on its own, exactly as if it came alone."""

    TYPE: ClassVar[str] = "queries"
    SEALED: ClassVar[bool] = True

    queries: tuple[Query, ...]

    def validate(self) -> None:
        _check_batch(self.queries, "a queries message", "queries")


@dataclass(frozen=True, kw_only=True, slots=True)
class Answer(Part):
    """What one query of a batch got: the ``query-result`` fields, or the ``error`` it would have had alone."""

    records: tuple[bytes, ...]
    evidence: tuple[bytes, ...]
    error: Error | None

    def validate(self) -> None:
        if self.error is not None and (self.records or self.evidence):
            raise _fail("a refused query has no records")


@dataclass(frozen=True, kw_only=True, slots=True)
class Answers(Message):
    """The answer to ``queries``: one answer per query, in the same order."""

    TYPE: ClassVar[str] = "answers"
    SEALED: ClassVar[bool] = True
    REPLY: ClassVar[bool] = True

    answers: tuple[Answer, ...]

    def validate(self) -> None:
        _check_batch(self.answers, "an answers message", "answers")


@dataclass(frozen=True, kw_only=True, slots=True)
class Melding(Message):
    """zendMelding: a participant reports an error in a record to its source."""

    TYPE: ClassVar[str] = "melding"
    SEALED: ClassVar[bool] = True
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"bsn_key"})

    melding_id: str
    event_type: str
    rule: str
    record: str
    description: str
    endpoint: str | None = None  # where a reporter no peer table holds (a client's node) hears the answer
    bsn_key: bytes | None = None  # a client's: the key of his certificate's BSN commitment

    def validate(self) -> None:
        check_uuid(self.melding_id, "melding_id")
        _check_bsn_key(self.bsn_key)
        if self.endpoint is not None:
            check_url(self.endpoint, "endpoint")
        if self.event_type != MELDING_EVENT:
            raise _fail(f"a melding has event type {MELDING_EVENT}")
        check_name(self.rule, "rule")
        Subject(subject=self.record, record_id=self.record)


@dataclass(frozen=True, kw_only=True, slots=True)
class AccessLogRequest(Message):
    """A client asks a source who accessed his data; or his gemachtigde, with the signed machtiging (a Toestemming)
    the client gave him."""

    TYPE: ClassVar[str] = "access-log-request"
    SEALED: ClassVar[bool] = True
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"bsn_key", "machtiging"})

    bsn: str
    since: int
    bsn_key: bytes | None = None  # the key of his certificate's BSN commitment
    machtiging: bytes | None = None

    def validate(self) -> None:
        if self.since > MAX_TIME:
            raise _fail("since is after the year 9999")
        _check_bsn_key(self.bsn_key)


def _check_bsn_key(key: bytes | None) -> None:
    if key is not None and len(key) != BSN_KEY_SIZE:
        raise _fail(f"bsn_key is {BSN_KEY_SIZE} bytes")


def with_bsn_key(message: M, bsn: str, key: bytes) -> M:
    """``message`` as a client's node sends it: with the key of his certificate's BSN commitment where it names his
    BSN (a query with it as a parameter, his subscription, his access-log request) or reports an error in a record
    about him (a melding), so that the receiver, which learns his BSN from it anyway, can check that he is that
    client. Nothing else carries the key: whoever holds it can test a BSN against his certificate."""
    names_him = (isinstance(message, Query) and message.params.get("bsn") == bsn
                 or isinstance(message, (Subscribe, AccessLogRequest)) and message.bsn == bsn
                 or isinstance(message, Melding))
    if names_him and getattr(message, "bsn_key") is None:
        return dataclasses.replace(message, bsn_key=key)  # type: ignore[type-var]
    return message


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditHead(Part):
    """A node's signed audit chain head: the last entry's number and hash, signed with the node's key over
    the deterministic CBOR of ["iwlz-audit-head", seq, hash]."""

    seq: int
    hash: bytes
    signature: bytes

    def validate(self) -> None:
        if self.seq < 0 or len(self.hash) != 32 or len(self.signature) != 64:
            raise _fail("an audit head is a uint, a 32-byte hash and a 64-byte signature")


@dataclass(frozen=True, kw_only=True, slots=True)
class AccessLogResult(Message):
    """The entries about the client, and the source's current audit head, so that he can hold it to them."""

    TYPE: ClassVar[str] = "access-log-result"
    SEALED: ClassVar[bool] = True
    REPLY: ClassVar[bool] = True

    entries: tuple[dict[str, Any], ...]
    head: AuditHead | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Witness(Message):
    """A node hands its audit head to a peer, which keeps the latest one it saw and signs a receipt."""

    TYPE: ClassVar[str] = "witness"

    head: AuditHead


@dataclass(frozen=True, kw_only=True, slots=True)
class WitnessQuery(Message):
    """Which audit head does the witness hold for ``node`` (a member key, e.g. ``uzovi:5151``)? With ``since``:
    and the heads it pinned for good, from that entry number on."""

    TYPE: ClassVar[str] = "witness-query"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"since"})

    node: str
    since: int | None = None

    def validate(self) -> None:
        check_name(self.node, "node")


@dataclass(frozen=True, kw_only=True, slots=True)
class WitnessReceipt(Message):
    """The witness's signed statement: at ``at`` (its clock) it held ``head`` for ``node``."""

    TYPE: ClassVar[str] = "witness-receipt"
    REPLY: ClassVar[bool] = True
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"pinned"})

    node: str
    head: AuditHead
    at: int
    pinned: tuple[AuditHead, ...] | None = None  # to a query with ``since``: at most MAX_PINS, by entry number

    def validate(self) -> None:
        check_name(self.node, "node")
        if self.pinned is not None and len(self.pinned) > MAX_PINS:
            raise _fail(f"a receipt carries at most {MAX_PINS} pinned heads")


@dataclass(frozen=True, kw_only=True, slots=True)
class RevocationNews(Message):
    """Relays root-signed revocation lists; each is verified on its own."""

    TYPE: ClassVar[str] = "revocation-list"

    lists: tuple[bytes, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Error(Message):
    """A signed refusal: stable ``code``, a reason safe to show, the deciding rule if any."""

    TYPE: ClassVar[str] = "error"
    REPLY: ClassVar[bool] = True

    code: str
    reason: str
    rule: str | None

    def validate(self) -> None:
        if self.code not in {c.value for c in ErrorCode}:
            raise _fail("unknown error code")


MESSAGE_TYPES: Final[dict[str, type[Message]]] = {
    cls.TYPE: cls
    for cls in (
        Announcement, PeerExchange, PeerExchangeResult, Query, QueryResult, Subscribe, Unsubscribe, Notification,
        Ack, Melding, AccessLogRequest, AccessLogResult, RevocationNews, Consent, Witness, WitnessQuery, WitnessReceipt, Error,
        Notifications, Receipts, Queries, Answers,
    )
}

__all__ = [
    "Part", "Message", "Subject", "DigestEntry", "Announcement", "PeerExchange", "PeerExchangeResult", "Query", "QueryResult",
    "Subscribe", "Unsubscribe", "Notification", "Ack", "Melding", "AccessLogRequest", "AccessLogResult",
    "RevocationNews", "Consent", "AuditHead", "Witness", "WitnessQuery", "WitnessReceipt", "Error", "Notifications", "Receipt", "Receipts",
    "Queries", "Answer", "Answers", "MAX_BATCH", "MAX_PINS", "MESSAGE_TYPES", "UUID4", "check_uuid", "check_did", "check_name",
    "with_bsn_key",
]
