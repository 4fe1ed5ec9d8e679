"""Write tests/vectors/protocol.json: golden bytes for certificates, revocation lists and every message type.

Run ``python -m tests.vectors.generate`` only when the wire format changes on
purpose (and say so in docs/PROTOCOL.md); tests/protocol/test_golden.py holds
the code to these bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from keys import Identity, TrustStore, issue_certificate, sign_revocation_list
from protocol.gossip import short_id
from protocol import (
    AccessLogRequest, AccessLogResult, Ack, Announcement, DigestEntry, Endpoint, Error, Melding, Message,
    Notification, PeerExchange, PeerExchangeResult, Query, QueryResult, ReplyTo, RevocationNews, Subject, Subscribe, Unsubscribe,
    AuditHead, Consent, Witness, WitnessQuery, WitnessReceipt, Notifications, Receipt, Receipts, Queries, Answer, Answers,
)

NOW = 1_790_000_000
ROOT_SEED = bytes(range(32))
A_SEED = bytes(range(1, 33))  # zorgkantoor 5151
B_SEED = bytes(range(2, 34))  # CIZ
INDICATIE = "WlzIndicatie/31835d1d-3933-4ffe-9f57-8985f41fae4a"
PATH = Path(__file__).with_name("protocol.json")


def certificate(root: Identity, node: Identity, role: str, ids: dict[str, str], n: int) -> bytes:
    return issue_certificate(root, subject=node.did, organisation=f"Golden {role}", role=role, identifiers=ids,
                             not_before=NOW - 86400, expires=NOW + 365 * 86400, issued_at=NOW - 86400,
                             cert_id=bytes([n]) * 16)


HEAD = AuditHead(seq=42, hash=bytes(range(32)), signature=bytes(64))


def messages() -> list[tuple[str, Message, bool]]:
    """(name, message, sent by A to B as a reply?)"""
    note = Notification(notification_id="0b9e1c0e-1d2a-4f5b-9c3d-2e4f6a8b0c1d", event_type="NIEUWE_INDICATIE_ZORGKANTOOR",
                        timestamp=NOW, sender_id_type="KVK", sender_id="62253778", receiver_id_type="UZOVI",
                        receiver_id="5151", subscription_id=None, subjects=(Subject(subject=INDICATIE, record_id=INDICATIE),))
    return [
        ("announcement", Announcement(seq=3, endpoints=("http://127.0.0.1:8701/",), registers=("bemiddeling",),
                                      templates=("bemiddelingspecificatie-by-id",), events=("NIEUWE_OVERDRACHT_ZORGKANTOOR",)), False),
        ("peer-exchange", PeerExchange(hash=bytes(range(16)), summary=None,
                                       digest=(DigestEntry(id=short_id(Identity.from_seed(B_SEED).did), seq=7),), buckets=(),
                                       want=(), announcements=(), sample=0, revocations={Identity.from_seed(ROOT_SEED).did: 1}), False),
        ("peer-exchange-result", PeerExchangeResult(hash=None, summary=bytes(512), digest=(), buckets=(3, 17),
                                                    want=(short_id(Identity.from_seed(B_SEED).did),),
                                                    announcements=(b"\x01",), sample=0, revocations={}, held=250), True),
        ("query", Query(template="indicatie-by-id", params={"wlzIndicatieID": "31835d1d-3933-4ffe-9f57-8985f41fae4a"},
                        evidence=(), history=False), False),
        ("query-result", QueryResult(records=(b"\x01\x02",), evidence=(b"\x03",)), True),
        ("subscribe", Subscribe(events=("NIEUWE_INDICATIE_ZORGKANTOOR",)), False),
        ("unsubscribe", Unsubscribe(subscription_id="6a1f8a4e-2c59-4d0b-8f3e-5b7c9d1e2f30"), False),
        ("notification", note, False),
        ("ack", Ack(ref="0b9e1c0e-1d2a-4f5b-9c3d-2e4f6a8b0c1d", status="accepted"), True),
        ("melding", Melding(melding_id="7c2d9e4f-3a5b-4c6d-8e7f-9a0b1c2d3e4f", event_type="IWLZFOUTMELDING", rule="IRG0012",
                            record=INDICATIE, description="ingangsdatum ligt na einddatum"), False),
        ("access-log-request", AccessLogRequest(bsn="106658037", since=0), False),
        ("access-log-result", AccessLogResult(entries=({"event": "query", "action": "R", "result": "allowed"},),
                                              head=HEAD), True),
        ("consent", Consent(consents=(b"\x04\x05",)), False),
        ("witness", Witness(head=HEAD), False),
        ("witness-query", WitnessQuery(node="uzovi:5151"), False),
        ("witness-receipt", WitnessReceipt(node="kvk:62253778", head=HEAD, at=NOW), True),
        ("revocation-list", RevocationNews(lists=()), False),
        ("error", Error(code="denied", reason="no bemiddelingspecificatie names this AGB", rule="UCIR-0002"), True),
        ("notifications", Notifications(notifications=(note,)), False),
        ("receipts", Receipts(receipts=(Receipt(ref="0b9e1c0e-1d2a-4f5b-9c3d-2e4f6a8b0c1d", status="accepted", code=None, reason=None),
                                        Receipt(ref="5d3c2b1a-0f9e-4d8c-b7a6-958473625140", status="refused", code="wrong-recipient",
                                                reason="the notification names another receiver"))), True),
        ("queries", Queries(queries=(Query(template="QIR-0001-ZKi", params={"wlzIndicatieID": INDICATIE.partition("/")[2],
                                                                             "uzovi": "5151"}, evidence=(), history=False),)), False),
        ("answers", Answers(answers=(Answer(records=(b"\x01\x02",), evidence=(), error=None),
                                     Answer(records=(), evidence=(), error=Error(code="denied", reason="not the zorgkantoor of this indicatie",
                                                                                 rule="UCIR-0001")))), True),
    ]


def build() -> dict[str, Any]:
    root, a, b = Identity.from_seed(ROOT_SEED), Identity.from_seed(A_SEED), Identity.from_seed(B_SEED)
    cert_a = certificate(root, a, "zorgkantoor", {"uzovi": "5151"}, 0xA1)
    cert_b = certificate(root, b, "ciz", {"kvk": "62253778"}, 0xB1)
    alice = Endpoint(a, cert_a, TrustStore([root.did]))
    out: dict[str, Any] = {
        "now": NOW,
        "root_seed": ROOT_SEED.hex(), "root_did": root.did,
        "a_seed": A_SEED.hex(), "a_did": a.did, "a_certificate": cert_a.hex(),
        "b_seed": B_SEED.hex(), "b_did": b.did, "b_certificate": cert_b.hex(),
        "revocation_list": sign_revocation_list(root, version=1, revoked=[bytes([0xA1]) * 16], issued_at=NOW).hex(),
        "envelopes": {},
    }
    request_hash = bytes(32)
    for n, (name, message, is_reply) in enumerate(messages(), start=1):
        to = "*" if message.BROADCAST else b.did
        sent = alice.send(
            message, to=to, now=NOW, lifetime=3600 if message.BROADCAST else 60, trace_id=f"{n:032x}",
            message_id=bytes([n]) * 16, reply_to=ReplyTo(bytes([0xEE]) * 16, request_hash) if is_reply else None,
            nonce=bytes([n]) * 24 if message.SEALED else None,
        )
        out["envelopes"][name] = {"hex": sent.data.hex(), "body": _plain(message.to_cbor())}
    # Once alice holds bob's certificate (from his announcement) she says so, and names her own by hash.
    bob = Endpoint(b, cert_b, TrustStore([root.did]))
    announcement = Announcement(seq=1, endpoints=("http://127.0.0.1:8702/",), registers=("indicatie",), templates=(), events=())
    alice.verify_broadcast(bob.send(announcement, to="*", now=NOW, lifetime=3600, trace_id=f"{98:032x}",
                                    message_id=bytes([98]) * 16).data, now=NOW)
    by_hash = alice.send(Subscribe(events=("NIEUWE_INDICATIE_ZORGKANTOOR",)), to=b.did, now=NOW, trace_id=f"{99:032x}",
                         message_id=bytes([99]) * 16, cert_by_hash=True, nonce=bytes([99]) * 24)
    out["by_hash"] = by_hash.data.hex()
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


if __name__ == "__main__":
    PATH.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {PATH}")
