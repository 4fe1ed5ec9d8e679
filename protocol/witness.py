"""Audit heads as witnesses see them: what a node signs about its audit chain, and how anyone checks it.

A node signs ``["iwlz-audit-head", seq, hash]`` (deterministic CBOR) with its
own key. A witness keeps the latest head it saw per member and refuses one
that goes back (a lower ``seq``) or forks (the same ``seq`` with another
``hash``): that is a chain that was cut or rewritten.
"""

from __future__ import annotations

from typing import Final

from keys import KeysError, Verifier
from protocol import codec
from protocol.messages import AuditHead

HEAD_LABEL: Final = "iwlz-audit-head"


def head_bytes(seq: int, digest: bytes) -> bytes:
    """What a node signs for its audit head."""
    return codec.encode([HEAD_LABEL, seq, digest])


def head_is_signed_by(head: AuditHead, did: str) -> bool:
    try:
        Verifier.from_did(did).verify(head_bytes(head.seq, head.hash), head.signature)
    except KeysError:
        return False
    return True


def conflict(held: AuditHead | None, offered: AuditHead) -> str | None:
    """Why ``offered`` cannot follow ``held`` (None when it can): the chain went back or forked."""
    if held is None:
        return None
    if offered.seq < held.seq:
        return f"the head goes back from entry {held.seq} to entry {offered.seq}: the chain was cut"
    if offered.seq == held.seq and offered.hash != held.hash:
        return f"entry {held.seq} has another hash than before: the chain was rewritten"
    return None


__all__ = ["HEAD_LABEL", "head_bytes", "head_is_signed_by", "conflict"]
