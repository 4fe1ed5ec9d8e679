"""Witnessing audit heads, both ways.

As a witness, a node keeps the latest head each member hands it (keyed by the
member's organisation identifier, so a new key does not start a new history)
and signs a receipt; a head that goes back or forks is refused with
``conflict`` and logged. As a witnessed node, it hands its head to a few
peers chosen by rendezvous hashing (stable while the peer table is), keeps
their receipts, and can ask them later which head they hold: an entry a
witness holds that the chain no longer has, or has with another hash, shows
that the chain was cut or rewritten — also by someone holding the node's key.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from keys import Member
from node.discovery import Peer, PeerTable
from node.errors import NodeError
from node.interfaces import Handlers, Requester
from node.store import AuditLog, Statement, Store
from protocol import AuditHead, ErrorCode, Incoming, Message, RemoteProtocolError, Witness, WitnessQuery, WitnessReceipt
from protocol.witness import conflict, head_is_signed_by

log = logging.getLogger(__name__)
WITNESSES = 3


def member_key(member: Member) -> str:
    """How witnesses know a member across key changes: its organisation identifier (its did for a client)."""
    for name in ("uzovi", "agb", "kvk"):
        if name in member.identifiers:
            return f"{name}:{member.identifiers[name]}"
    return member.did


@dataclass(frozen=True, slots=True)
class Held:
    witness: str  # did
    organisation: str
    head: AuditHead | None  # None: the witness holds nothing for us, or did not answer
    error: str | None = None


class Witnessing:
    def __init__(self, *, store: Store, audit: AuditLog, peers: PeerTable, client: Requester, me: Callable[[], Member],
                 clock: Callable[[], float]) -> None:
        self.store = store
        self.audit = audit
        self.peers = peers
        self.client = client
        self.me = me
        self.clock = clock
        self._handed: int = -1  # the seq last handed to witnesses

    def handlers(self) -> Handlers:
        return {Witness: self._on_witness, WitnessQuery: self._on_query}

    # As a witness ----------------------------------------------------------------

    async def _held(self, member: str) -> AuditHead | None:
        row = await self.store.fetchone("SELECT seq, hash, signature FROM witnessed WHERE member = ?", (member,))
        return AuditHead(seq=int(row[0]), hash=bytes(row[1]), signature=bytes(row[2])) if row else None

    async def _on_witness(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        offered = incoming.message
        assert isinstance(offered, Witness)
        if not head_is_signed_by(offered.head, incoming.sender.did):
            raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "the audit head is not signed by its sender")
        key = member_key(incoming.sender)
        why = conflict(await self._held(key), offered.head)
        if why is not None:
            log.warning("refused an audit head from %s: %s", key, why)
            raise RemoteProtocolError(ErrorCode.CONFLICT, why)
        head = offered.head
        return WitnessReceipt(node=key, head=head, at=now), [(
            "INSERT OR REPLACE INTO witnessed (member, did, seq, hash, signature, at) VALUES (?, ?, ?, ?, ?, ?)",
            (key, incoming.sender.did, head.seq, head.hash, head.signature, now), False)]

    async def _on_query(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        query = incoming.message
        assert isinstance(query, WitnessQuery)
        head = await self._held(query.node)
        if head is None:
            raise RemoteProtocolError(ErrorCode.NOT_FOUND, "this node holds no audit head for that member")
        return WitnessReceipt(node=query.node, head=head, at=now), []

    # As a witnessed node -------------------------------------------------------------

    def witnesses(self) -> list[Peer]:
        """The peers that witness us: the first few by rendezvous hash of our key and theirs (no clients)."""
        mine = member_key(self.me()).encode()
        candidates = [p for p in self.peers.all() if p.role != "client"]
        return sorted(candidates, key=lambda p: hashlib.sha256(mine + p.did.encode()).digest())[:WITNESSES]

    async def hand_head(self) -> int:
        """Hand our head to our witnesses when it moved since the last time; returns the receipts kept."""
        head = self.audit.head()
        if head.seq == self._handed or head.seq == 0:
            return 0
        results = await asyncio.gather(*(self._hand(p, head) for p in self.witnesses()))
        kept = [r for r in results if r is not None]
        if kept:
            await self.store.write(kept)
            self._handed = head.seq
        return len(kept)

    async def _hand(self, peer: Peer, head: AuditHead) -> Statement | None:
        try:
            reply = await self.client.request(peer.url, Witness(head=head), to=peer.did)
        except NodeError as exc:
            log.info("witness %s did not take our audit head: %s", peer.did[-8:], exc)
            return None
        receipt = reply.message
        if not isinstance(receipt, WitnessReceipt) or receipt.head != head:
            return None
        return ("INSERT OR REPLACE INTO witness_receipts (witness, organisation, seq, hash, at, receipt) VALUES (?, ?, ?, ?, ?, ?)",
                (peer.did, peer.organisation, head.seq, head.hash, receipt.at, reply.data), False)

    async def ask_witnesses(self) -> list[Held]:
        """Ask every witness that gave us a receipt, and our current witnesses, which head they hold for us."""
        rows = await self.store.fetchall("SELECT witness, organisation FROM witness_receipts")
        targets = {str(did): str(org) for did, org in rows} | {p.did: p.organisation for p in self.witnesses()}
        key = member_key(self.me())
        return list(await asyncio.gather(*(self._ask(did, org, key) for did, org in targets.items())))

    async def _ask(self, did: str, organisation: str, key: str) -> Held:
        peer = self.peers.get(did)
        if peer is None:
            return Held(did, organisation, None, "not in the peer table")
        try:
            reply = await self.client.request(peer.url, WitnessQuery(node=key), to=did)
        except NodeError as exc:
            return Held(did, organisation, None, str(exc))
        receipt = reply.message
        return Held(did, organisation, receipt.head if isinstance(receipt, WitnessReceipt) else None)

    async def check_against_witnesses(self) -> tuple[bool, str]:
        """Whether every head a witness holds is an entry of our chain, with the same hash."""
        held = await self.ask_witnesses()
        problems, confirmed = [], 0
        for item in held:
            if item.head is None:
                continue
            row = await self.store.fetchone("SELECT hash FROM audit WHERE seq = ?", (item.head.seq,))
            if row is None:
                problems.append(f"{item.organisation} holds entry {item.head.seq}, which the chain no longer has: it was cut")
            elif bytes(row[0]) != item.head.hash:
                problems.append(f"{item.organisation} holds entry {item.head.seq} with another hash: the chain was rewritten")
            else:
                confirmed += 1
        if problems:
            return False, "; ".join(problems)
        asked = len(held)
        return True, f"{confirmed} of {asked} witness(es) hold a head that is in the chain"

__all__ = ["Witnessing", "Held", "member_key", "WITNESSES"]
