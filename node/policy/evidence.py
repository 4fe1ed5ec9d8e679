"""Evidence a requester presents: signed records from other sources, verified offline.

Evidence that does not verify, is a tombstone, or is older than the freshness
bound and cannot be confirmed with its source counts as absent: a rule that
needs it then denies. A client's consent is not asked after: its signer's
node is in no peer table (and often off), and its end is pushed instead
(withdrawn: a notification to every source it names, retried until each has
it; ended: its geldigTot, which the rule reads). A machtiging names every
source, so a source his chain reaches after he withdrew it never had that
notification: it asks his node, at the endpoint the machtiging names.

Confirming asks another node, so what a requester presents must not decide
how much this node asks: an answer is kept for a minute, never longer than
the freshness bound (a version confirmed counts as fresh as one just
signed, and no longer), the same question under way is asked
once, at most PER_SOURCE are under way to one source and CONCURRENT in all
(a source that does not answer, the requester's own node perhaps, holds up
only the questions about its own records), clients' nodes FOR_CLIENTS
apart from the members' (there are as many as there are clients, each
naming where his node is), and one message may start at
most PER_MESSAGE new questions (a batch of 64 queries, one stale piece each).
Before, 16 pieces per query and 64 queries per message made one signed
message from a member 1,024 signed questions from this node to the sources.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from keys import Member, TrustStore
from protocol import RemoteProtocolError
from protocol.records import RecordVersion, verify_record

# Whether a version still stands, by its source: True; False: its source says it does not; None: no answer.
Confirm = Callable[[RecordVersion, Member], Awaitable[bool | None]]
MAX_EVIDENCE = 16
KEEP = 60  # seconds an answer of a source is taken as still true (at most the freshness bound)
KEPT = 10_000  # answers kept at most (the oldest go first)
CONCURRENT = 32  # questions to sources under way at most
PER_SOURCE = 4  # ... and to one source
FOR_CLIENTS = 8  # questions to clients' nodes (machtigingen), apart: any client names where his is
PER_MESSAGE = 64  # new questions one incoming message may cause

# New questions the message being handled may still cause; None outside a message (the node's own work).
_budget: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("confirmations_budget", default=None)


@contextlib.contextmanager
def one_message() -> Iterator[None]:
    """Everything decided inside shares one message's budget of new questions to sources."""
    token = _budget.set([PER_MESSAGE])
    try:
        yield
    finally:
        _budget.reset(token)


class Confirmations:
    """Asks a source whether a version is still current (``ask``), once for many: see the module's docstring."""

    def __init__(self, ask: Confirm) -> None:
        self.ask = ask
        self._kept: OrderedDict[tuple[str, str, str, int], tuple[bool | None, int]] = OrderedDict()
        self._under_way: dict[tuple[str, str, str, int], asyncio.Task[bool | None]] = {}
        self._limit = asyncio.Semaphore(CONCURRENT)
        self._for_clients = asyncio.Semaphore(FOR_CLIENTS)
        # By signer, while a question to it is under way or waits (clients are many: none is kept after).
        self._per_source: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    async def confirm(self, record: RecordVersion, signer: Member, now: int, *, freshness: int) -> bool | None:
        key = (signer.did, record.kind, record.record_id, record.version)
        kept = self._kept.get(key)
        if kept is not None and kept[1] > now:
            return kept[0]
        task = self._under_way.get(key)
        if task is None:
            budget = _budget.get()
            if budget is not None:
                if budget[0] <= 0:
                    return None  # not asked
                budget[0] -= 1
            task = asyncio.ensure_future(self._ask(key, record, signer, now + min(KEEP, freshness)))
            self._under_way[key] = task
        return await asyncio.shield(task)

    async def _ask(self, key: tuple[str, str, str, int], record: RecordVersion, signer: Member, until: int
                   ) -> bool | None:
        per_source, users = self._per_source.setdefault(signer.did, (asyncio.Semaphore(PER_SOURCE), [0]))
        users[0] += 1
        limit = self._for_clients if signer.role == "client" else self._limit
        try:
            async with per_source, limit:
                current = await self.ask(record, signer)
        finally:
            del self._under_way[key]
            users[0] -= 1
            if not users[0]:
                del self._per_source[signer.did]
        self._kept[key] = (current, until)
        self._kept.move_to_end(key)
        while len(self._kept) > KEPT:
            self._kept.popitem(last=False)
        return current


@dataclass(frozen=True, slots=True)
class Evidence:
    record: RecordVersion
    signer: Member


async def verified_evidence(presented: tuple[bytes, ...], trust: TrustStore, now: int, *, freshness: int,
                            confirm: Confirmations | None, kinds: frozenset[str] | None = None,
                            not_asked: Callable[[RecordVersion], bool] = lambda record: False,
                            dropped: list[str] | None = None) -> list[Evidence]:
    """What of ``presented`` verifies and counts now; only records of ``kinds`` (None: any), those the rule can
    use: stale evidence of another kind would have the node ask its source about a record it does not need.
    Records ``not_asked`` holds for are not confirmed (a consent: its signer tells this node when it ends). Why a
    piece that verified was not confirmed goes to ``dropped``, for the reason of a denial."""
    valid = []
    for data in presented[:MAX_EVIDENCE]:
        try:
            record, signer = verify_record(data, trust, now)
        except RemoteProtocolError:
            continue
        if record.deleted or (kinds is not None and record.kind not in kinds):
            continue
        if now - record.signed_at > freshness and not not_asked(record):
            current = None if confirm is None else await confirm.confirm(record, signer, now, freshness=freshness)
            if not current:
                if dropped is not None:
                    dropped.append(f"the {record.kind} presented is older than this node's freshness bound, and "
                                   + unconfirmed(current))
                continue
        valid.append(Evidence(record, signer))
    return valid


def unconfirmed(current: bool | None) -> str:
    """Why a piece of evidence its signer was asked about does not count."""
    return "its signer says it no longer stands" if current is False else "its signer could not be asked whether it still stands"


__all__ = ["Evidence", "Confirm", "Confirmations", "one_message", "verified_evidence", "unconfirmed", "MAX_EVIDENCE"]
