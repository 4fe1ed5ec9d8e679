"""Gossip of signed announcements, sans-IO: the table, one exchange step by step, and who to talk to.

The node (node/gossip.py) and the national-size simulation (bench/gossip.py)
drive these same objects; only the transport differs.

Table: split into 64 buckets by the first byte of SHA-256(did). A bucket's
fingerprint is the XOR of the 8-byte hashes of its (did, seq) entries, so it
changes in O(1); the table hash is the first 16 bytes of SHA-256 over all
fingerprints.

Exchange (docs/PROTOCOL.md §4.1), A asks B:

1. A sends its table hash and its rumors (ids and seqs it learned last round).
   B answers with its own hash, the rumor ids it wants, and its 64
   fingerprints when the hashes differ and it wants no rumor (a wanted rumor
   usually is the difference; A then sends its hash again with it).
2. A sends the wanted announcements and its digest of the buckets whose
   fingerprints differ. B answers with the announcements of those buckets A
   lacks or holds older, and the ids it wants in turn.
3. A sends those. Nothing is sent twice, and two equal tables cost one small
   message each way.

A node that knows too few peers introduces itself to a bootstrap peer instead:
its own announcement in, a small random sample of announcements out. Bootstrap
peers are asked by everyone, so they hand out samples, never whole tables;
the spreading is done by everyone else.

Every node hands out at most ``Budget`` bytes of announcements and digests per
round, whoever asks: a node that is asked too often answers with less, and
the askers find what is missing elsewhere. The budget follows the size of the
network: a share of the node's own table, or of the largest table a peer
said it holds (``held`` in every answer), since a young node's own table
lags behind the network it must help to fill.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from protocol.messages import (
    BUCKETS,
    FINGERPRINT_SIZE,
    MAX_ANNOUNCEMENTS,
    SUMMARY_SIZE,
    TABLE_HASH_SIZE,
    DigestEntry,
    PeerExchange,
    PeerExchangeResult,
)

SHORT_ID_SIZE: Final = 8
PER_EXCHANGE: Final = MAX_ANNOUNCEMENTS  # announcements in one message
DIGEST_ENTRIES: Final = 1024  # entries described in one digest (whole buckets)
ROUND_BUDGET: Final = 100_000  # bytes of announcements and digests a node hands out per round, at least
# ... or this share of all it holds, when that is more: each node of a large network must receive the whole table,
# and a budget that stays put while the table grows makes convergence take (table / budget) rounds at least.
BUDGET_SHARE: Final = 0.4
# ... or, while our table is smaller, this share of the largest table a peer told us of in the last two rounds. In a
# young network a node's own table is far smaller than the network it must help to fill; a fixed floor large enough
# for that growth lets a few nodes of a small network hand out several whole tables each (docs/DECISIONS.md).
TOLD_SHARE: Final = 0.75
MAX_TOLD: Final = 16_384  # announcements: what a peer's word can raise our budget to, at most (a lie costs no more)
SAMPLE: Final = 2  # announcements a newcomer asks a bootstrap peer for (random 2-out graphs are connected)
MAX_STEPS: Final = 8  # requests in one exchange
RUMOR_ROUNDS: Final = 4  # a new entry is offered as a rumor for at most this many rounds, while someone wants it
RUMORS: Final = 64  # rumors offered in one message
IDLE_WAIT_MAX: Final = 8  # rounds between exchanges when nothing changes
SMALL_TABLE: Final = 16  # a quiet node that knows fewer other peers asks a bootstrap peer for a new sample
MAX_ANNOUNCEMENT_SIZE: Final = 4096
_DIGEST_ENTRY_SIZE: Final = 22  # encoded DigestEntry


def _h(did: str, seq: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{did}\x00{seq}".encode()).digest()[:FINGERPRINT_SIZE], "big")


@functools.lru_cache(maxsize=65_536)
def short_id(did: str) -> bytes:
    """What digests and wants name a node by: the first 8 bytes of SHA-256(did). Kept for the dids seen last,
    so that every table holding a did shares one bytes object for it."""
    return hashlib.sha256(did.encode()).digest()[:SHORT_ID_SIZE]


def bucket_of(did: str) -> int:
    return short_id(did)[0] % BUCKETS


@dataclass(frozen=True, slots=True)
class Known:
    did: str
    seq: int
    expires: int
    data: bytes


@dataclass(slots=True)
class Budget:
    """Bytes a node still hands out this round."""

    left: int = ROUND_BUDGET

    def spend(self, size: int) -> bool:
        if size > self.left:
            return False
        self.left -= size
        return True


class GossipTable:
    """Signed announcements by did, newest sequence number wins; a pure object.

    One index only: the 64 buckets, each a dict from short id to entry. A node of a network of 10,000 holds
    10,000 entries, and the simulation of that network holds 10,000 tables of them: every further index per
    entry would cost gigabytes there.
    """

    def __init__(self) -> None:
        self.changes = 0  # grows with every change, so a caller can tell whether a round changed anything
        self._size = 0
        self.bytes = 0  # of all announcements held
        self._fingerprints = [0] * BUCKETS
        self._buckets: list[dict[bytes, Known]] = [{} for _ in range(BUCKETS)]
        self._summary: bytes | None = None

    def __len__(self) -> int:
        return self._size

    def __contains__(self, did: str) -> bool:
        return self.get(did) is not None

    def get(self, did: str) -> Known | None:
        known = self._by_id(short_id(did))
        return known if known is not None and known.did == did else None

    def dids(self) -> Iterator[str]:
        for bucket in self._buckets:
            for known in bucket.values():
                yield known.did

    def is_news(self, did: str, seq: int) -> bool:
        known = self.get(did)
        return known is None or seq > known.seq

    def offer(self, entry: Known) -> bool:
        """Keep ``entry`` if it is new or newer; True when the table changed. A did whose short id another
        did holds already is not kept (2^-64 by chance; the first keeps its place)."""
        sid = short_id(entry.did)
        b = sid[0] % BUCKETS
        old = self._buckets[b].get(sid)
        if old is not None and (old.did != entry.did or entry.seq <= old.seq):
            return False
        if old is None:
            self._size += 1
        else:
            self.bytes -= len(old.data)
            self._fingerprints[b] ^= _h(old.did, old.seq)
        self.bytes += len(entry.data)
        self._buckets[b][sid] = entry
        self._fingerprints[b] ^= _h(entry.did, entry.seq)
        self._changed()
        return True

    def remove(self, did: str) -> None:
        old = self.get(did)
        if old is None:
            return
        sid = short_id(did)
        b = sid[0] % BUCKETS
        del self._buckets[b][sid]
        self._size -= 1
        self.bytes -= len(old.data)
        self._fingerprints[b] ^= _h(did, old.seq)
        self._changed()

    def round_budget(self, told: int = 0) -> Budget:
        """What this node hands out in a round, the largest of: ROUND_BUDGET; BUDGET_SHARE of its table; and,
        while its table holds fewer than ``told`` announcements (at most MAX_TOLD), TOLD_SHARE of a table that
        large with announcements as large on average as its own. A node that holds what its peers hold is
        asked by those that lack it and needs no more than its own share."""
        told = min(told, MAX_TOLD)
        told_bytes = told * self.bytes // self._size if 0 < self._size < told else 0
        return Budget(max(ROUND_BUDGET, int(self.bytes * BUDGET_SHARE), int(told_bytes * TOLD_SHARE)))

    def _changed(self) -> None:
        self.changes += 1
        self._summary = None

    # Comparing ------------------------------------------------------------

    def summary(self) -> bytes:
        if self._summary is None:
            self._summary = b"".join(f.to_bytes(FINGERPRINT_SIZE, "big") for f in self._fingerprints)
        return self._summary

    def table_hash(self) -> bytes:
        return hashlib.sha256(self.summary()).digest()[:TABLE_HASH_SIZE]

    def differing(self, summary: bytes) -> list[int]:
        """Buckets whose fingerprint differs from ``summary`` (all of them if it is malformed)."""
        if len(summary) != SUMMARY_SIZE:
            return list(range(BUCKETS))
        mine = self.summary()
        return [b for b in range(BUCKETS)
                if summary[b * FINGERPRINT_SIZE:(b + 1) * FINGERPRINT_SIZE] != mine[b * FINGERPRINT_SIZE:(b + 1) * FINGERPRINT_SIZE]]

    def digest(self, buckets: list[int], *, limit: int = DIGEST_ENTRIES) -> tuple[tuple[DigestEntry, ...], tuple[int, ...]]:
        """(short id, seq) of every entry in whole buckets, in the given order, up to ``limit`` entries;
        and the buckets described."""
        entries: list[DigestEntry] = []
        described: list[int] = []
        for b in buckets:
            bucket = self._buckets[b]
            if described and len(entries) + len(bucket) > limit:
                break
            entries.extend(DigestEntry(id=sid, seq=known.seq) for sid, known in bucket.items())
            described.append(b)
        return tuple(entries), tuple(described)

    def compare(self, theirs: tuple[DigestEntry, ...], buckets: tuple[int, ...]) -> tuple[list[str], list[bytes]]:
        """Given the other side's digest of whole ``buckets``: (dids they lack or hold older, ids I want)."""
        their_seq = {e.id: e.seq for e in theirs}
        they_lack = [known.did for b in buckets for sid, known in self._buckets[b].items()
                     if their_seq.get(sid, -1) < known.seq]
        return they_lack, self.wanted(theirs)

    def wanted(self, theirs: tuple[DigestEntry, ...]) -> list[bytes]:
        """The ids in ``theirs`` this table lacks or holds older."""
        out = []
        for e in theirs:
            known = self._by_id(e.id)
            if known is None or known.seq < e.seq:
                out.append(e.id)
        return out

    def rumors(self, dids: list[str]) -> tuple[DigestEntry, ...]:
        return tuple(DigestEntry(id=short_id(d), seq=known.seq) for d in dids if (known := self.get(d)) is not None)

    def resolve(self, ids: tuple[bytes, ...] | list[bytes]) -> list[str]:
        """The dids of the short ids this table holds."""
        return [known.did for i in ids if (known := self._by_id(i)) is not None]

    def _by_id(self, sid: bytes) -> Known | None:
        return self._buckets[sid[0] % BUCKETS].get(sid) if len(sid) == SHORT_ID_SIZE else None

    def sample(self, k: int, *, exclude: set[str], rng: random.Random) -> list[str]:
        every = list(self.dids())
        pool = [d for d in rng.sample(every, min(len(every), k + len(exclude))) if d not in exclude]
        return pool[:k]

    def take(self, dids: list[str], budget: Budget, *, limit: int = PER_EXCHANGE) -> tuple[bytes, ...]:
        """The announcements of ``dids`` (at most ``limit``) that the round's budget still allows."""
        out = []
        for did in dids[:limit]:
            known = self.get(did)
            if known is None:
                continue
            data = known.data
            if not budget.spend(len(data)):
                break
            out.append(data)
        return tuple(out)

    def digest_within(self, buckets: list[int], budget: Budget) -> tuple[tuple[DigestEntry, ...], tuple[int, ...]]:
        limit = min(DIGEST_ENTRIES, budget.left // _DIGEST_ENTRY_SIZE)
        if limit <= 0:
            return (), ()
        digest, described = self.digest(buckets, limit=limit)
        budget.spend(len(digest) * _DIGEST_ENTRY_SIZE)
        return digest, described


# Exchanging -----------------------------------------------------------------


def answer(table: GossipTable, request: PeerExchange, *, asker: str, me: str, budget: Budget,
           rng: random.Random, revocations: dict[str, int]) -> PeerExchangeResult:
    """B's side of every step. ``request.announcements`` must already be verified and offered to ``table``."""
    announcements: list[bytes] = []
    want: list[bytes] = []
    if request.sample:
        picks = table.sample(min(request.sample, SAMPLE), exclude={asker, me}, rng=rng)
        # Not from the round's budget: a newcomer asks once, and asking again would cost more than this.
        announcements += table.take(picks, Budget(SAMPLE * MAX_ANNOUNCEMENT_SIZE))
    if request.want:
        announcements += table.take(table.resolve(request.want), budget)
    if request.buckets:  # a digest of whole buckets, possibly empty: "I hold nothing in these"
        they_lack, want = table.compare(request.digest, request.buckets)
        rng.shuffle(they_lack)
        announcements += table.take(they_lack, budget, limit=PER_EXCHANGE - len(announcements))
    elif request.digest:
        want = table.wanted(request.digest)
    mine = table.table_hash()
    # Wanted rumors likely explain the difference; A sends them with its hash again, and we compare then.
    differs = request.hash is not None and request.hash != mine and not request.sample and not want
    return PeerExchangeResult(
        held=len(table),
        hash=mine if request.hash is not None else None,
        summary=table.summary() if differs else None,
        digest=(), buckets=(), want=tuple(want[:PER_EXCHANGE]),
        announcements=tuple(announcements[:MAX_ANNOUNCEMENTS]), sample=0,
        revocations=revocations if request.hash is not None else {},
    )


@dataclass
class Exchange:
    """A's side: ``first()``, then ``next(reply)`` until it returns None.

    The caller verifies and offers each reply's announcements to the table
    before calling ``next`` with it.
    """

    table: GossipTable
    budget: Budget
    rng: random.Random
    rumors: list[str] = field(default_factory=list)
    introduce: bytes | None = None  # our own announcement, for a bootstrap peer
    ask_sample: bool = False  # a private node (a client's) asks for a sample without introducing itself
    revocations: dict[str, int] = field(default_factory=dict)
    steps: int = 0
    useful: list[str] = field(default_factory=list)  # our rumors the other side wanted
    told: int = 0  # the size of the other side's table, as it said
    # Buckets B's summary showed differ that no digest described yet, and those the last digest described.
    _differing: list[int] = field(default_factory=list)
    _described: tuple[int, ...] = ()

    def first(self) -> PeerExchange:
        self.steps = 1
        return PeerExchange(
            hash=self.table.table_hash(), summary=None, digest=self.table.rumors(self.rumors[:RUMORS]), buckets=(),
            want=(), announcements=(self.introduce,) if self.introduce else (),
            sample=SAMPLE if self.introduce or self.ask_sample else 0, revocations=self.revocations,
        )

    def next(self, reply: PeerExchangeResult) -> PeerExchange | None:
        if reply.held is not None:  # a node of an earlier version does not say
            self.told = max(self.told, reply.held)
        if self.introduce is not None or self.ask_sample or self.steps >= MAX_STEPS:
            return None
        wanted = self.table.resolve(reply.want)
        if self.steps == 1:
            self.useful = [d for d in wanted if d in self.rumors]
        announcements = list(self.table.take(wanted, self.budget))
        if reply.summary is not None:
            # Buckets of the rumors just handed over will match once B has them.
            handed = {bucket_of(d) for d in wanted}
            self._differing = [b for b in self.table.differing(reply.summary) if b not in handed]
            self.rng.shuffle(self._differing)
            self._described = ()
        elif len(reply.announcements) >= PER_EXCHANGE and self._described:
            # B had more in the buckets just described than one message holds: describe them again, with what
            # it sent now in our table, before the next ones.
            self._differing[:0] = self._described
        digest, buckets = self.table.digest_within(self._differing, self.budget) if self._differing else ((), ())
        self._described = buckets
        del self._differing[:len(buckets)]
        if not (announcements or buckets):
            return None
        self.steps += 1
        recheck = reply.hash is not None and reply.summary is None  # B held back its summary for our rumors
        return PeerExchange(hash=self.table.table_hash() if recheck else None, summary=None, digest=digest,
                            buckets=buckets, want=(), announcements=tuple(announcements), sample=0,
                            revocations=self.revocations if recheck else {})


@dataclass(frozen=True, slots=True)
class Planned:
    did: str
    introduce: bool  # a bootstrap peer: introduce ourselves and ask for a sample


@dataclass
class Schedule:
    """Who a node talks to each round.

    In a round in which its table changed (or it has rumors), a node runs
    ``fanout`` exchanges with random known peers; when nothing changes it
    waits twice as long each time, up to IDLE_WAIT_MAX rounds, for a single
    exchange, starting again at one round after every change. A bootstrap
    peer is asked for a sample while fewer than SAMPLE other peers are known, or when a
    quiet node still knows fewer than SMALL_TABLE; it is one choice among the
    rest only for quiet exchanges, since while the network is busy every
    newcomer would pick it. Bootstrap peers run no busy exchanges of their
    own (they are asked enough), only one a round among themselves, so that
    each holds the whole network to draw samples from.
    """

    fanout: int
    rng: random.Random
    wait: int = 1
    idle: int = 0
    seen_changes: int = -1
    rumors: dict[str, int] = field(default_factory=dict)  # did -> rounds it has been offered
    offered: dict[str, int] = field(default_factory=dict)  # this round's rumors
    spared: set[str] = field(default_factory=set)  # rumors given their one round after nobody wanted them
    _told: int = 0  # the largest table a peer said it holds, this round
    _told_before: int = 0  # ... and the round before

    def told(self, held: int) -> None:
        """A peer said its table holds ``held`` announcements (Exchange.told)."""
        self._told = max(self._told, held)

    def network_size(self) -> int:
        """The largest table a peer said it holds in the last two rounds, at most MAX_TOLD: what this node's
        round budget follows while its own table is smaller. A quiet node that asks nobody forgets it."""
        return min(MAX_TOLD, max(self._told, self._told_before))

    def heard(self, did: str) -> None:
        self.rumors[did] = 0
        self.spared.discard(did)

    def wanted(self, dids: list[str]) -> None:
        """Rumors someone still lacked are offered again next round (rumor mongering with feedback
        and a counter: a rumor is dropped after one more round in which nobody wanted it, so one
        most peers know soon stops costing anything)."""
        for did in dids:
            age = self.offered.get(did)
            if age is not None and age + 1 < RUMOR_ROUNDS:
                self.rumors.setdefault(did, age + 1)

    def _spare(self) -> None:
        for did, age in self.offered.items():
            if did not in self.rumors and did not in self.spared and age + 1 < RUMOR_ROUNDS:
                self.rumors[did] = age + 1
                self.spared.add(did)
        self.spared &= set(self.rumors)

    def plan(self, table: GossipTable, me: str, bootstrap: set[str]) -> tuple[list[Planned], list[str]]:
        """This round's exchanges, and the rumors to offer in them."""
        self._spare()
        self.offered, self.rumors = self.rumors, {}
        self._told_before, self._told = self._told, 0
        rumors = list(self.offered)
        others: list[str] = []
        boot: list[str] = []
        for did in table.dids():  # once: at 10,000 peers this walk is most of a quiet round's cost
            if did != me:
                (boot if did in bootstrap else others).append(did)
        plan: list[Planned] = []
        if me in bootstrap and boot:
            # Bootstrap peers keep each other complete, so that every sample is drawn from the whole network.
            plan.append(Planned(self.rng.choice(boot), introduce=False))
        if table.changes != self.seen_changes or rumors:
            # Only rumors on their last, spare round: one peer is enough to sweep up a straggler.
            spare_only = table.changes == self.seen_changes and all(d in self.spared for d in rumors)
            if table.changes != self.seen_changes:
                # News: the quiet exchanges after it start again at one round apart, so that the few nodes no
                # rumor reached are swept up in a few rounds, not after the longest wait.
                self.wait = 1
            self.seen_changes, self.idle = table.changes, 0
            # While the network is busy, bootstrap peers only introduce and the others do the spreading.
            count = 0 if me in bootstrap else 1 if spare_only else self.fanout
            lonely = len(others) < SAMPLE
        else:
            self.idle += 1
            count = 0
            lonely = False
            if self.idle >= self.wait or me in bootstrap:
                # A bootstrap peer is left out of busy exchanges, so it asks someone every quiet round.
                self.idle, self.wait, count = 0, min(self.wait * 2, IDLE_WAIT_MAX), 1
                # Quiet with a small table: we may sit in a corner of early newcomers; a new sample gets us out.
                lonely = len(others) < SMALL_TABLE and bool(boot) and me not in bootstrap
                count = 0 if lonely else 1
                others += boot  # when all is quiet a bootstrap peer is one of many
        if lonely and boot and me not in bootstrap:
            plan.append(Planned(self.rng.choice(boot), introduce=True))
        plan += [Planned(d, introduce=False) for d in self.rng.sample(others, min(count, len(others)))]
        return plan, rumors


__all__ = [
    "GossipTable", "Known", "Budget", "Exchange", "Schedule", "Planned", "answer", "bucket_of", "short_id",
    "BUCKETS", "SUMMARY_SIZE", "PER_EXCHANGE", "ROUND_BUDGET", "BUDGET_SHARE", "TOLD_SHARE", "MAX_TOLD", "SAMPLE", "RUMOR_ROUNDS", "IDLE_WAIT_MAX",
]
