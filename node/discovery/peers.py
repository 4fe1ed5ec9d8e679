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
    vestigingen: tuple[str, ...] = ()  # a zorgaanbieder's further AGB codes, from its certificate

    @property
    def url(self) -> str:
        return self.endpoints[0]

    def identifier_values(self) -> list[tuple[str, str]]:
        """(name, value) of every identifier the peer is known by: its main ones and its vestigingen (as agb)."""
        return list(self.identifiers.items()) + [("agb", code) for code in self.vestigingen]

    def public(self) -> dict[str, Any]:
        return {"did": self.did, "role": self.role, "organisation": self.organisation, "identifiers": self.identifiers,
                "region": self.region, "endpoints": list(self.endpoints), "registers": list(self.registers),
                "templates": list(self.templates), "seq": self.seq, "expires": self.expires,
                "last_seen": self.last_seen, "source": self.source, "vestigingen": list(self.vestigingen)}


_COLUMNS = ("did", "role", "organisation", "identifiers", "region", "endpoints", "registers", "templates", "events",
            "seq", "expires", "cert_id", "last_seen", "source", "announcement", "vestigingen")


class PeerTable:
    def __init__(self, store: Store, own_did: str) -> None:
        self.store = store
        self.own_did = own_did
        self._peers: dict[str, Peer] = {}
        self._by_identifier: dict[tuple[str, str], str] = {}  # (name, value) -> did
        self._superseded: list[tuple[str, str]] = []  # (old did, new did) since the last take_superseded()

    async def load(self) -> None:
        for row in await self.store.fetchall(f"SELECT {', '.join(_COLUMNS)} FROM peers"):
            values = list(row)
            for i in (3, 5, 6, 7, 8):
                values[i] = json.loads(values[i])
            for i in (5, 6, 7, 8):
                values[i] = tuple(values[i])
            values[11], values[14] = bytes(values[11]), bytes(values[14])
            values[15] = tuple(json.loads(values[15] or "[]"))
            self._put(Peer(*values))

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
        """The peer with this identifier (an AGB code may be one of a zorgaanbieder's vestigingen)."""
        did = self._by_identifier.get((name, value))
        return self._peers.get(did) if did is not None else None

    def _put(self, peer: Peer) -> None:
        self._drop(peer.did)
        self._peers[peer.did] = peer
        for key in peer.identifier_values():
            self._by_identifier[key] = peer.did

    def _drop(self, did: str) -> None:
        old = self._peers.pop(did, None)
        if old is not None:
            for key in old.identifier_values():
                if self._by_identifier.get(key) == did:
                    del self._by_identifier[key]

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
        # A member is one until its certificate ends, however long its last announcement was signed for.
        expires = min(incoming.envelope.expires, member.expires)
        peer = Peer(member.did, member.role, member.organisation, dict(member.identifiers), member.region,
                    message.endpoints, message.registers, message.templates, message.events, message.seq,
                    expires, member.cert_id, now, source, incoming.data, member.vestigingen)
        if member.supersedes is not None:
            for old in [p for p in self._peers.values() if p.cert_id == member.supersedes and p.did != member.did]:
                self._drop(old.did)
                self._superseded.append((old.did, member.did))
        self._put(peer)
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
                  peer.announcement, json.dumps(list(peer.vestigingen)))
        return (f"INSERT OR REPLACE INTO peers ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})", values, False)

    def prune(self, *, now: int, trust: TrustStore) -> tuple[list[str], list[Statement]]:
        """Drop peers whose announcement expired or whose certificate was revoked: (their dids, the deletes)."""
        return self._drop_all([p.did for p in self._peers.values() if p.expires < now or trust.is_revoked(p.cert_id)])

    def drop_revoked(self, trust: TrustStore) -> tuple[list[str], list[Statement]]:
        """Drop the peers whose certificate is revoked, and only those: what waits for them may end, while a peer
        whose announcement merely expired is still a member and gets what waits for it when it is back."""
        return self._drop_all([p.did for p in self._peers.values() if trust.is_revoked(p.cert_id)])

    def _drop_all(self, gone: list[str]) -> tuple[list[str], list[Statement]]:
        for did in gone:
            self._drop(did)
        return gone, [("DELETE FROM peers WHERE did = ?", (did,), False) for did in gone]


def _replace_seen(peer: Peer, now: int) -> Peer:
    values = {name: getattr(peer, name) for name in _COLUMNS}
    values["last_seen"] = now
    return Peer(**values)


__all__ = ["Peer", "PeerTable"]
