"""Asking peers: find the peer a request is for (by did, URL, register or identifier), send it,
and verify what comes back."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from keys import Member, TrustStore
from node.client import PeerClient
from node.discovery.peers import PeerTable
from node.errors import NetworkError, NodeError, PeerRefused
from protocol import (
    MAX_BATCH, AccessLogRequest, AccessLogResult, Answer, Answers, ErrorCode, Incoming, Message, Queries, Query, QueryResult,
    RemoteProtocolError,
)
from protocol.codec import MAX_MESSAGE_SIZE
from protocol.messages import check_url
from protocol.records import RecordVersion, verify_record

log = logging.getLogger(__name__)

Learn = Callable[[str], Awaitable[str]]  # fetch and verify the announcement at a URL: its did, or NetworkError
Verified = list[tuple[RecordVersion, Member, bytes]]
Fetched = tuple[Verified, Verified]  # the records a query brought, and the evidence backing them
QUERIES_LIMIT = MAX_MESSAGE_SIZE // 2  # bytes of queries and their evidence in one batch, at most
QUERY_OVERHEAD = 256  # a query's template, parameters and encoding, generously
SINGLE_ONLY_FOR = 3600.0  # seconds a peer that answered ``unsupported`` to a batch is asked one query at a time


def _chunks(asked: list[tuple[str, dict[str, str], list[bytes]]]) -> list[list[tuple[str, dict[str, str], list[bytes]]]]:
    """Batches of at most MAX_BATCH queries whose evidence stays well under the message size."""
    chunks: list[list[tuple[str, dict[str, str], list[bytes]]]] = []
    size = 0
    for item in asked:
        item_size = QUERY_OVERHEAD + sum(map(len, item[2]))
        if not chunks or len(chunks[-1]) == MAX_BATCH or size + item_size > QUERIES_LIMIT:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += item_size
    return chunks


class Router:
    def __init__(self, *, peers: PeerTable, client: PeerClient, trust: TrustStore, learn: Learn,
                 clock: Callable[[], float]) -> None:
        self.peers = peers
        self.client = client
        self.trust = trust
        self.learn = learn
        self.clock = clock
        self._single_only: dict[str, float] = {}  # did -> until when it is asked one query at a time

    async def peer_for(self, target: str) -> tuple[str, str]:
        """(url, did) of a peer named by did, by URL, by the register it holds (``register:indicatie``)
        or by an identifier in its certificate (``uzovi:5151``, ``agb:…``, ``kvk:…``)."""
        kind, _, value = target.partition(":")
        if kind == "register":
            holders = self.peers.holding(value)
            if not holders:
                raise NetworkError(f"no peer announces the {value} register")
            return holders[0].url, holders[0].did
        if kind in ("uzovi", "agb", "kvk"):
            peer = self.peers.by_identifier(kind, value)
            if peer is None:
                raise NetworkError(f"no peer with {kind} {value} in the peer table")
            return peer.url, peer.did
        if target.startswith("did:"):
            known = self.peers.get(target)
            if known is None:
                raise NetworkError(f"no peer {target} in the peer table")
            return known.url, known.did
        try:
            return target, await self.learn(target)
        except NetworkError as exc:
            # Away right now, but known: what is queued for it (a melding) waits in the outbox.
            known_there = [p for p in self.peers.all() if target in p.endpoints]
            if len(known_there) == 1:
                return target, known_there[0].did
            raise NetworkError(f"{target} did not give a valid announcement: {exc}") from exc

    async def send(self, target: str, message: Message) -> Incoming:
        url, did = await self.peer_for(target)
        return await self.client.request(url, message, to=did)

    async def query(self, target: str, template: str, params: dict[str, str], evidence: list[bytes],
                    history: bool = False) -> Verified:
        """Ask a source with a query template; every record in the reply must verify and come from it."""
        records, _ = await self.query_with_evidence(target, template, params, evidence, history)
        return records

    async def query_with_evidence(self, target: str, template: str, params: dict[str, str], evidence: list[bytes],
                                  history: bool = False) -> tuple[Verified, Verified]:
        """As ``query``, with the evidence the source handed along (from other sources; what does not verify is dropped)."""
        url, did = await self.peer_for(target)
        query = Query(template=template, params=params, evidence=tuple(evidence), history=history)
        reply = await self.client.request(url, query, to=did)
        assert isinstance(reply.message, QueryResult)
        return self._verified(did, reply.message.records, reply.message.evidence)

    async def query_many(self, target: str, asked: list[tuple[str, dict[str, str], list[bytes]]]) -> list[Fetched | NodeError]:
        """Several queries to one source, up to MAX_BATCH in one ``queries`` message: per query, what it brought
        (verified as ``query_with_evidence`` does) or the PeerRefused it got. A query the source could not fit in
        the batch's answer is asked alone; a source that does not know the message is asked one query at a time
        for an hour."""
        url, did = await self.peer_for(target)
        out: list[Fetched | NodeError] = []
        for chunk in _chunks(asked):
            batched = len(chunk) > 1 and self._single_only.get(did, 0.0) <= self.clock()
            answers = await self._ask_batch(url, did, chunk) if batched else None
            unanswered: list[Fetched | NodeError | None] = [None] * len(chunk)
            for (template, params, evidence), answer in zip(chunk, answers or unanswered):
                if answer is None or (isinstance(answer, PeerRefused) and answer.code == ErrorCode.TOO_LARGE.value):
                    try:
                        answer = await self.query_with_evidence(did, template, params, evidence)
                    except PeerRefused as exc:
                        answer = exc
                out.append(answer)
        return out

    async def _ask_batch(self, url: str, did: str, chunk: list[tuple[str, dict[str, str], list[bytes]]]
                         ) -> list[Fetched | NodeError] | None:
        """One ``queries`` message: an answer per query, or None when the source wants them one by one."""
        queries = Queries(queries=tuple(Query(template=t, params=p, evidence=tuple(e), history=False) for t, p, e in chunk))
        try:
            reply = await self.client.request(url, queries, to=did)
        except PeerRefused as exc:
            if exc.code == ErrorCode.UNSUPPORTED.value:
                log.info("%s does not know batched queries: asking one at a time", did[-8:])
                self._single_only[did] = self.clock() + SINGLE_ONLY_FOR
                return None
            if exc.code == ErrorCode.TOO_LARGE.value:
                return None
            raise
        assert isinstance(reply.message, Answers)
        if len(reply.message.answers) != len(chunk):
            raise NetworkError(f"{did} answered {len(reply.message.answers)} of {len(chunk)} queries")
        return [self._answer(did, answer) for answer in reply.message.answers]

    def _answer(self, did: str, answer: Answer) -> Fetched | NodeError:
        if answer.error is not None:
            return PeerRefused(answer.error.code, answer.error.reason, answer.error.rule)
        try:
            return self._verified(did, answer.records, answer.evidence)
        except NetworkError as exc:
            return exc

    def _verified(self, did: str, records: tuple[bytes, ...], evidence: tuple[bytes, ...]) -> Fetched:
        """Every record must verify and come from the node asked; evidence from others that does not verify is dropped."""
        now = int(self.clock())
        verified = []
        for data in records:
            try:
                record, source = verify_record(data, self.trust, now)
            except RemoteProtocolError as exc:
                raise NetworkError(f"a record from {did} does not verify ({exc.code})") from exc
            if source.did != did:
                raise NetworkError("a record in the reply was not signed by the node asked")
            verified.append((record, source, data))
        backing = []
        for data in evidence[:64]:
            try:
                backing.append((*verify_record(data, self.trust, now), data))
            except RemoteProtocolError as exc:
                log.info("dropped evidence handed along by %s (%s)", did[-8:], exc.code.value)
        return verified, backing

    def _confirmed_at(self, record: RecordVersion, signer: Member) -> str | None:
        peer = self.peers.get(signer.did)
        if peer is not None:
            return peer.url
        named = (record.data or {}).get("endpoint") if signer.role == "client" else None
        if not isinstance(named, str):
            return None
        try:
            check_url(named, "endpoint")  # as any endpoint a member names: no query, fragment or user
        except RemoteProtocolError:
            return None
        return named

    async def access_log(self, target: str, bsn: str, since: int = 0) -> list[dict[str, Any]]:
        url, did = await self.peer_for(target)
        reply = await self.client.request(url, AccessLogRequest(bsn=bsn, since=since), to=did)
        assert isinstance(reply.message, AccessLogResult)
        return [dict(e) for e in reply.message.entries]

    async def record_status(self, record: RecordVersion, signer: Member) -> bool | None:
        """Ask the source of a signed record whether this version is still current: a member in the peer table at
        its endpoint; a client's node (in none) at the endpoint his signed record names (a machtiging's). None: no
        answer (none to ask, not reached, or one that does not verify)."""
        url = self._confirmed_at(record, signer)
        if url is None:
            log.info("cannot confirm evidence: its source is in no peer table and names no endpoint")
            return None
        query = Query(template="RECORD-STATUS", params={"kind": record.kind, "id": record.record_id}, evidence=(), history=False)
        try:
            reply = await self.client.request(url, query, to=signer.did)
        except PeerRefused as exc:
            log.info("the source of evidence did not confirm it: %s", exc.code)
            return False if exc.code == "not-found" else None
        except NodeError as exc:
            log.info("cannot confirm evidence with its source: %s", exc.__class__.__name__)
            return None
        result = reply.message
        if isinstance(result, QueryResult) and not result.records:
            return False  # its signer, answering itself, holds no such record
        if not isinstance(result, QueryResult) or len(result.records) != 1:
            return None
        try:
            status, source = verify_record(result.records[0], self.trust, int(self.clock()))
        except RemoteProtocolError:
            return None
        data = status.data or {}
        if source.did != signer.did:
            return None
        return data.get("version") == record.version and data.get("deleted") is False


__all__ = ["Router"]
