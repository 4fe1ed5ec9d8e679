"""The iwlz wire protocol, sans-IO: bytes in, typed messages out; messages in, bytes out."""

from protocol.envelope import (
    BROADCAST,
    MEDIA_TYPE,
    Endpoint,
    Envelope,
    Incoming,
    Outgoing,
    ReplyTo,
    digest,
    new_trace_id,
)
from protocol.errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
from protocol.events import EVENT_RULES, ID_TYPE_OF_ROLE, MELDING_EVENT, EventRule
from protocol.messages import (
    MESSAGE_TYPES,
    AccessLogRequest,
    AccessLogResult,
    Ack,
    Answer,
    Answers,
    AuditHead,
    Consent,
    Announcement,
    DigestEntry,
    Error,
    Melding,
    Message,
    MAX_BATCH,
    MAX_PINS,
    Notification,
    Notifications,
    PeerExchange,
    PeerExchangeResult,
    Query,
    Queries,
    QueryResult,
    Receipt,
    Receipts,
    RevocationNews,
    Subject,
    Subscribe,
    Unsubscribe,
    Witness,
    WitnessQuery,
    WitnessReceipt,
    with_bsn_key,
)
from protocol.gossip import GossipTable, Known
from protocol.replay import ReplayGuard

__all__ = [
    "BROADCAST", "MEDIA_TYPE", "Endpoint", "Envelope", "Incoming", "Outgoing", "ReplyTo", "digest", "new_trace_id",
    "ErrorCode", "LocalProtocolError", "ProtocolError", "RemoteProtocolError",
    "EVENT_RULES", "ID_TYPE_OF_ROLE", "MELDING_EVENT", "EventRule",
    "MESSAGE_TYPES", "AccessLogRequest", "AccessLogResult", "Ack", "Announcement", "DigestEntry", "Error",
    "Melding", "Message", "Notification", "PeerExchange", "PeerExchangeResult", "Query", "QueryResult", "RevocationNews", "Subject",
    "Subscribe", "Unsubscribe", "AuditHead", "Consent", "Witness", "WitnessQuery", "WitnessReceipt", "ReplayGuard", "GossipTable", "Known",
    "MAX_BATCH", "MAX_PINS", "Notifications", "Receipt", "Receipts", "Queries", "Answer", "Answers", "with_bsn_key",
]
