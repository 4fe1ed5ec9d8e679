"""The peer table: who is out there, what they hold and where they listen.

Only verified, signed announcements enter it (whatever mDNS, a bootstrap URL
or gossip delivered is a hint until then). A newer sequence number replaces
an older one; an expired announcement or a revoked member drops out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from keys import TrustStore
from node.store import Statement, Store
from protocol import Announcement, Incoming


@dataclass(frozen=True, slots=True)
class Peer:
    did: str
    role: str
    organisation: str
    identifiers: dict[str, str]
    region: str | None
    endpoints: tuple[str, ...]
    registers: tuple[str, ...]
    templates: tuple[str, ...]
    events: tuple[str, ...]
    seq: int
    expires: int
    cert_id: bytes
    last_seen: int
    source: str
    announcement: bytes

    @property
    def url(self) -> str:
        return self.endpoints[0]

    def public(self) -> dict[str, Any]:
        return {"did": self.did, "role": self.role, "organisation": self.organisation, "identifiers": self.identifiers,
                "region": self.region, "endpoints": list(self.endpoints), "registers": list(self.registers),
                "templates": list(self.templates), "seq": self.seq, "expires": self.expires,
                "last_seen": self.last_seen, "source": self.source}


_COLUMNS = ("did", "role", "organisation", "identifiers", "region", "endpoints", "registers", "templates", "events",
            "seq", "expires", "cert_id", "last_seen", "source", "announcement")


class PeerTable:
    def __init__(self, store: Store, own_did: str) -> None:
        self.store = store
        self.own_did = own_did
        self._peers: dict[str, Peer] = {}
        self._superseded: list[tuple[str, str]] = []  # (old did, new did) since the last take_superseded()

    async def load(self) -> None:
        for row in await self.store.fetchall(f"SELECT {', '.join(_COLUMNS)} FROM peers"):
            values = list(row)
            for i in (3, 5, 6, 7, 8):
                values[i] = json.loads(values[i])
            for i in (5, 6, 7, 8):
                values[i] = tuple(values[i])
            values[11], values[14] = bytes(values[11]), bytes(values[14])
            peer = Peer(*values)
            self._peers[peer.did] = peer

    def __len__(self) -> int:
        return len(self._peers)

    def get(self, did: str) -> Peer | None:
        return self._peers.get(did)

    def all(self) -> list[Peer]:
        return sorted(self._peers.values(), key=lambda p: (p.role, p.organisation, p.did))

    def digest(self) -> dict[str, int]:
        return {did: p.seq for did, p in self._peers.items()}

    def holding(self, register: str) -> list[Peer]:
        return [p for p in self.all() if register in p.registers]

    def by_identifier(self, name: str, value: str) -> Peer | None:
        for peer in self.all():
            if peer.identifiers.get(name) == value:
                return peer
        return None

    def accept(self, incoming: Incoming, *, source: str, now: int) -> Statement | None:
        """Take a verified announcement; returns the statement to persist it, or None if it is not news."""
        message = incoming.message
        if not isinstance(message, Announcement) or incoming.envelope.sender == self.own_did:
            return None
        if incoming.sender.role == "client":
            return None  # a client's node stays private: no peer table names him
        known = self._peers.get(incoming.envelope.sender)
        if known is not None and known.seq >= message.seq:
            if known.seq == message.seq and now > known.last_seen:
                self._peers[known.did] = _replace_seen(known, now)
            return None
        member = incoming.sender
        peer = Peer(member.did, member.role, member.organisation, dict(member.identifiers), member.region,
                    message.endpoints, message.registers, message.templates, message.events, message.seq,
                    incoming.envelope.expires, member.cert_id, now, source, incoming.data)
        self._peers[peer.did] = peer
        if member.supersedes is not None:
            for old in [p for p in self._peers.values() if p.cert_id == member.supersedes and p.did != member.did]:
                del self._peers[old.did]
                self._superseded.append((old.did, member.did))
        return self._upsert(peer)

    def take_superseded(self) -> tuple[list[tuple[str, str]], list[Statement]]:
        """Peers whose certificate a newer one of the same member superseded under a new key: (old did, new did)
        pairs, and the deletes of their rows."""
        pairs, self._superseded = self._superseded, []
        return pairs, [("DELETE FROM peers WHERE did = ?", (old,), False) for old, _ in pairs]

    def _upsert(self, peer: Peer) -> Statement:
        values = (peer.did, peer.role, peer.organisation, json.dumps(peer.identifiers), peer.region,
                  json.dumps(list(peer.endpoints)), json.dumps(list(peer.registers)), json.dumps(list(peer.templates)),
                  json.dumps(list(peer.events)), peer.seq, peer.expires, peer.cert_id, peer.last_seen, peer.source,
                  peer.announcement)
        return (f"INSERT OR REPLACE INTO peers ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})", values, False)

    def prune(self, *, now: int, trust: TrustStore) -> tuple[list[str], list[Statement]]:
        """Drop peers whose announcement expired or whose certificate was revoked: (their dids, the deletes)."""
        gone = [p.did for p in self._peers.values() if p.expires < now or trust.is_revoked(p.cert_id)]
        for did in gone:
            del self._peers[did]
        return gone, [("DELETE FROM peers WHERE did = ?", (did,), False) for did in gone]


def _replace_seen(peer: Peer, now: int) -> Peer:
    values = {name: getattr(peer, name) for name in _COLUMNS}
    values["last_seen"] = now
    return Peer(**values)


__all__ = ["Peer", "PeerTable"]
