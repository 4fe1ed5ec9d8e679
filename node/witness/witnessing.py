"""Witnessing audit heads, both ways.

As a witness, a node keeps the latest head each member hands it (keyed by the
member's organisation identifier, so a new key does not start a new history)
and signs a receipt; a head that goes back or forks is refused with
``conflict`` and logged. A head further on cannot be told from one of a
chain that was rewritten and then made longer than the one held, so besides
the latest the witness pins a party's head for good every ``pin_every``
seconds: those are what a rewrite cannot take back. As a witnessed node, it
hands its head to a few peers chosen by rendezvous hashing (stable while the
peer table is), keeps their receipts, and can ask them later which head they
hold: an entry a witness holds that the chain no longer has, or has with
another hash, shows that the chain was cut or rewritten — also by someone
holding the node's key.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from keys import Member
from node.discovery import Peer, PeerTable
from node.errors import NodeError, PeerRefused
from node.interfaces import Handlers, Requester
from node.store import AuditLog, Statement, Store
from protocol import (MAX_PINS, AuditHead, ErrorCode, Incoming, Message, RemoteProtocolError, Witness, WitnessQuery,
                      WitnessReceipt)
from protocol.witness import conflict, head_is_signed_by

log = logging.getLogger(__name__)
WITNESSES = 3
PIN_PAGES = 2000  # pages a check asks one witness for: 1,024,000 pinned heads, ~19 years of one every 10 minutes


def member_key(member: Member) -> str:
    """How witnesses know a member across key changes: its organisation identifier (a client has none, and his node
    hands its head to no witness: its did)."""
    for name in ("uzovi", "agb", "kvk"):
        if name in member.identifiers:
            return f"{name}:{member.identifiers[name]}"
    return member.did


def rendezvous(member: str, did: str) -> bytes:
    """Where peer ``did`` ranks as a witness of ``member`` (a member key): lowest first. A node picks its witnesses
    by it and a witness tells by it whether it is one, so both must rank alike."""
    return hashlib.sha256(member.encode() + did.encode()).digest()


@dataclass(frozen=True, slots=True)
class Held:
    witness: str  # did
    organisation: str
    head: AuditHead | None  # None: the witness holds nothing for us, or did not answer
    error: str | None = None
    pinned: int = 0  # how many heads it keeps for good
    mismatch: str | None = None  # how the first of those that does not fit our chain does not fit
    receipted: bool = False  # it gave us a receipt: it holds a head of ours


class Witnessing:
    def __init__(self, *, store: Store, audit: AuditLog, peers: PeerTable, client: Requester, me: Callable[[], Member],
                 clock: Callable[[], float], pin_every: float = 600.0,
                 is_revoked: Callable[[bytes], bool] = lambda cert_id: False) -> None:
        self.store = store
        self.is_revoked = is_revoked
        self.pin_every = pin_every
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
        return (await self._held_under(member))[0]

    async def _held_under(self, member: str) -> tuple[AuditHead | None, bytes | None]:
        """The head held for ``member`` and the certificate it was signed under (None: before schema 18)."""
        row = await self.store.fetchone("SELECT seq, hash, signature, cert FROM witnessed WHERE member = ?", (member,))
        if row is None:
            return None, None
        return (AuditHead(seq=int(row[0]), hash=bytes(row[1]), signature=bytes(row[2])),
                None if row[3] is None else bytes(row[3]))

    async def _on_witness(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        offered = incoming.message
        assert isinstance(offered, Witness)
        if incoming.sender.role == "client":
            # His node's log is his own: no one else reads it, so a head of it proves nothing to anyone, and what a
            # witness kept (his did, his certificate's BSN commitment to guess at) told a member he is a client.
            raise RemoteProtocolError(ErrorCode.DENIED, "a witness keeps nothing of a client's: his log is his own",
                                      rule="WITNESS-CLIENT")
        if not head_is_signed_by(offered.head, incoming.sender.did):
            raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "the audit head is not signed by its sender")
        key = member_key(incoming.sender)
        held, under = await self._held_under(key)
        why = conflict(held, offered.head)
        if why is not None and under is not None and self.is_revoked(under):
            # Signed with a key since revoked (a thief's head far ahead would hold the member back for good); the
            # heads pinned meanwhile stay, and show whatever that key signed.
            log.warning("an audit head of %s signed under a revoked certificate gives way: %s", key, why)
        elif why is not None:
            log.warning("refused an audit head from %s: %s", key, why)
            raise RemoteProtocolError(ErrorCode.CONFLICT, why)
        head = offered.head
        statements: list[Statement] = [(
            "INSERT OR REPLACE INTO witnessed (member, did, seq, hash, signature, at, cert) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, incoming.sender.did, head.seq, head.hash, head.signature, now, incoming.sender.cert_id), False)]
        # Pinned only by a node the party would choose as its witness (else a party handing its head to every node
        # would have each keep a pin for it every interval).
        if await self._pin_due(key, now) and self._would_choose_me(key, incoming.sender.did):
            statements.append(("INSERT OR IGNORE INTO witness_pins (member, seq, hash, signature, at) VALUES (?, ?, ?, ?, ?)",
                               (key, head.seq, head.hash, head.signature, now), False))
        return WitnessReceipt(node=key, head=head, at=now), statements

    def _would_choose_me(self, key: str, did: str) -> bool:
        """Whether this node is among the witnesses the member ``key`` (at ``did``) picks, as far as this node's peer
        table tells, with one place to spare: the member's table may hold a peer this one does not yet."""
        me = self.me()
        if me.role == "client":
            return False
        mine = rendezvous(key, me.did)
        ahead = sum(1 for p in self.peers.all() if p.role != "client" and p.did not in (did, me.did)
                    and rendezvous(key, p.did) < mine)
        return ahead < WITNESSES + 1

    async def _pin_due(self, member: str, now: int) -> bool:
        row = await self.store.fetchone("SELECT at FROM witness_pins WHERE member = ? ORDER BY seq DESC LIMIT 1", (member,))
        return row is None or now - int(row[0]) >= self.pin_every

    async def _on_query(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        query = incoming.message
        assert isinstance(query, WitnessQuery)
        head = await self._held(query.node)
        if head is None:
            raise RemoteProtocolError(ErrorCode.NOT_FOUND, "this node holds no audit head for that member")
        pinned = None if query.since is None else await self._pinned(query.node, query.since)
        return WitnessReceipt(node=query.node, head=head, at=now, pinned=pinned), []

    async def _pinned(self, member: str, since: int) -> tuple[AuditHead, ...]:
        rows = await self.store.fetchall("SELECT seq, hash, signature FROM witness_pins WHERE member = ? AND seq >= ? "
                                         "ORDER BY seq LIMIT ?", (member, since, MAX_PINS))
        return tuple(AuditHead(seq=int(seq), hash=bytes(digest), signature=bytes(sig)) for seq, digest, sig in rows)

    # As a witnessed node -------------------------------------------------------------

    def witnesses(self) -> list[Peer]:
        """The peers that witness us: the first few by rendezvous hash of our key and theirs (no clients); none for a
        client's node, whose log is his own."""
        if self.me().role == "client":
            return []
        mine = member_key(self.me())
        candidates = [p for p in self.peers.all() if p.role != "client"]
        return sorted(candidates, key=lambda p: rendezvous(mine, p.did))[:WITNESSES]

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
        receipted = {str(did): str(org) for did, org in rows}
        targets = receipted | {p.did: p.organisation for p in self.witnesses()}
        key = member_key(self.me())
        return list(await asyncio.gather(*(self._ask(did, org, key, did in receipted) for did, org in targets.items())))

    async def _ask(self, did: str, organisation: str, key: str, receipted: bool) -> Held:
        """The head ``did`` holds for us, and the heads it pinned (pages of MAX_PINS by entry number, each held
        against our chain as it comes: up to the first that does not fit)."""
        peer = self.peers.get(did)
        if peer is None:
            return Held(did, organisation, None, "not in the peer table", receipted=receipted)
        head: AuditHead | None = None
        pinned, since, mismatch = 0, 0, None
        for _ in range(PIN_PAGES):
            try:
                reply = await self._query(peer, key, since)
            except NodeError as exc:
                return Held(did, organisation, None, str(exc), receipted=receipted)
            receipt = reply.message
            if not isinstance(receipt, WitnessReceipt):
                break
            head = receipt.head
            page = receipt.pinned or ()
            pinned += len(page)
            mismatch = await self._first_mismatch(page)
            if mismatch is not None or len(page) < MAX_PINS or page[-1].seq < since:
                break
            since = page[-1].seq + 1
        return Held(did, organisation, head, pinned=pinned, mismatch=mismatch, receipted=receipted)

    async def _query(self, peer: Peer, key: str, since: int) -> Incoming:
        """A witness-query with ``since``; to a witness from before pinned heads (it refuses the field as
        malformed), the plain one."""
        try:
            return await self.client.request(peer.url, WitnessQuery(node=key, since=since), to=peer.did)
        except PeerRefused as exc:
            if exc.code != ErrorCode.MALFORMED.value:
                raise
        return await self.client.request(peer.url, WitnessQuery(node=key), to=peer.did)

    async def check_against_witnesses(self) -> tuple[bool, str]:
        """Whether every head a witness holds, the latest and the ones it pinned, is an entry of our chain with the
        same hash."""
        if self.me().role == "client":
            return True, "a client's node hands its audit head to no witness: its log is his own"
        held = await self.ask_witnesses()
        problems: list[str] = []
        confirmed = 0
        for item in held:
            if item.head is None:
                continue
            problem = item.mismatch or await self._first_mismatch((item.head,))
            if problem is None:
                confirmed += 1
            else:
                problems.append(f"{item.organisation} holds {problem}")
        if problems:
            return False, "; ".join(problems)
        receipted = [item for item in held if item.receipted]
        if receipted and all(item.head is None for item in receipted):
            # They hold our head (they said so): a check that reaches none of them has confirmed nothing.
            errors = sorted({item.error for item in receipted if item.error})
            return False, (f"none of the {len(receipted)} witnesses that gave receipts could be asked"
                           f"{': ' + '; '.join(errors) if errors else ''}")
        return True, f"{confirmed} of {len(held)} witness(es) hold heads that are in the chain"

    async def _first_mismatch(self, heads: tuple[AuditHead, ...]) -> str | None:
        """How the first of ``heads`` (at most MAX_PINS) that does not fit the chain does not fit, a head this node
        signed before one it did not (a witness can claim anything: only this node's signature makes it proof);
        None when all fit."""
        if not heads:
            return None
        rows = await self.store.fetchall(f"SELECT seq, hash FROM audit WHERE seq IN ({', '.join('?' * len(heads))})",
                                         [head.seq for head in heads])
        chained = {int(seq): bytes(digest) for seq, digest in rows}
        ours: set[str] | None = None
        unsigned: str | None = None
        for head in heads:
            digest = chained.get(head.seq)
            if digest == head.hash:
                continue
            what = f"entry {head.seq}, which the chain no longer has" if digest is None else f"entry {head.seq} with another hash"
            ours = await self._own_dids() if ours is None else ours
            if any(head_is_signed_by(head, did) for did in ours):
                return (f"{what}: the chain was {'cut' if digest is None else 'rewritten'} (the witness holds this "
                        "node's own signature over that entry)")
            # It fails the check all the same: it cannot be told from a head of a key this node no longer knows.
            unsigned = unsigned or (f"{what}, not signed by any key of this node: a head it did not get from this "
                                    "node, or signed by a key this node no longer knows")
        return unsigned

    async def _own_dids(self) -> set[str]:
        """The keys this node signs with and has signed records with (a head is signed with the key of its day)."""
        rows = await self.store.fetchall("SELECT DISTINCT did FROM signing_certificates")
        return {self.me().did} | {str(did) for (did,) in rows}

__all__ = ["Witnessing", "Held", "member_key", "WITNESSES"]
