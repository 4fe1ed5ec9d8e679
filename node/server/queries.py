"""Answering queries (alone or batched) and access-log requests: policy decision, register read, audit, signed views."""

from __future__ import annotations

from typing import Any

from keys import Member
from node.interfaces import Handlers
from node.metrics import Metrics
from node.policy import Denied, PolicyDecisionPoint, View, one_message
from node.store import Actor, AuditLog, HeldEvidence, Registers, Statement, utc
from node.server.dispatch import denied_entries
from protocol import (
    AccessLogRequest, AccessLogResult, Answer, Answers, Error, ErrorCode, Incoming, Message, Queries, Query, QueryResult,
    RemoteProtocolError,
)
from protocol.codec import MAX_MESSAGE_SIZE
from protocol.records import RecordVersion


ACCESS_LOG_LIMIT = 10_000  # the newest entries about the client since the time he asks from
# Bytes of records and evidence in one batch's answers at most: room left for the envelope under the message limit.
ANSWERS_LIMIT = MAX_MESSAGE_SIZE * 3 // 4


class QueryHandlers:
    def __init__(self, *, pdp: PolicyDecisionPoint, registers: Registers, audit: AuditLog, metrics: Metrics,
                 did: str) -> None:
        self.pdp = pdp
        self.registers = registers
        self.audit = audit
        self.metrics = metrics
        self.did = did
        self.held = HeldEvidence(registers.store)

    def handlers(self) -> Handlers:
        return {Query: self.on_query, Queries: self.on_queries, AccessLogRequest: self.on_access_log}

    async def on_query(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        query = incoming.message
        assert isinstance(query, Query)
        with one_message():
            return await self._answer(incoming, query, now)

    async def on_queries(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        """Each query of the batch decided, audited and answered exactly as if it came alone. An answer that would
        make the reply too large is not given (nor audited): that query is refused ``too-large``, to be asked alone."""
        batch = incoming.message
        assert isinstance(batch, Queries)
        with one_message():  # the batch's queries share one message's questions to sources
            return await self._answer_each(incoming, batch, now)

    async def _answer_each(self, incoming: Incoming, batch: Queries, now: int) -> tuple[Message, list[Statement]]:
        answers: list[Answer] = []
        statements: list[Statement] = []
        size = 0
        for query in batch.queries:
            try:
                result, made = await self._answer(incoming, query, now)
            except Denied as exc:
                made = denied_entries(self.audit, self.metrics, incoming, query, exc, now)
                answers.append(_refused(exc))
            except RemoteProtocolError as exc:
                made = []
                answers.append(_refused(exc))
            else:
                grown = size + sum(map(len, result.records)) + sum(map(len, result.evidence))
                if size and grown > ANSWERS_LIMIT:
                    answers.append(_refused(RemoteProtocolError(
                        ErrorCode.TOO_LARGE, "the batch's answer is full: ask this query alone")))
                    continue
                size = grown
                answers.append(Answer(records=result.records, evidence=result.evidence, error=None))
            statements.extend(made)
        return Answers(answers=tuple(answers)), statements

    async def _answer(self, incoming: Incoming, query: Query, now: int) -> tuple[QueryResult, list[Statement]]:
        try:
            decision = await self.pdp.decide(incoming.sender, query, now)
        except Denied as exc:
            # The client whose record was asked for sees the refusal too, whatever the query named.
            exc.subjects = await self.pdp.subjects_of(query)
            raise
        records = tuple(self._signed_view(view, now) for view in decision.views)
        actor, trace = Actor.of(incoming.sender), incoming.envelope.trace_id
        event = f"query {query.template}"
        statements = [self.audit.entry(now=now, event=event, action="R", result="allowed", actor=actor, subject=view.bsn,
                                       record=view.path, trace_id=trace, rule=decision.rule, request=incoming.data)
                      for view in decision.views]
        statements.extend(decision.remember)
        if not decision.views:
            subjects: list[str | None] = [*sorted(decision.subjects)] or [query.params.get("bsn")]
            statements.extend(self.audit.entry(now=now, event=event, action="R", result="empty", actor=actor,
                                               subject=subject, trace_id=trace, rule=decision.rule, request=incoming.data)
                              for subject in subjects)
        self.metrics.count_decision(decision.rule, "allowed" if decision.views else "empty")
        backing = [data for kinds, about in sorted(decision.attach) for data in await self.held.about(about, kinds)]
        return QueryResult(records=records, evidence=tuple(backing)), statements

    def _signed_view(self, view: View, now: int) -> bytes:
        if view.unchanged:
            return view.source.signed
        record = RecordVersion(view.kind, view.record_id, view.version, self.did, now, view.deleted, view.data)
        return self.registers.signer.sign(record)

    async def on_access_log(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        request = incoming.message
        assert isinstance(request, AccessLogRequest)
        rule = await self._access_log_rule(incoming.sender, request, now)
        entries = await self.audit.entries(subject=request.bsn, since_at=utc(request.since), limit=ACCESS_LOG_LIMIT,
                                           newest_first=True)
        since: list[dict[str, Any]] = [e.public(with_subject=False, with_user=False) for e in entries]
        statements = [self.audit.entry(now=now, event="access-log", action="R", result="allowed",
                                       actor=Actor.of(incoming.sender), subject=request.bsn,
                                       trace_id=incoming.envelope.trace_id, rule=rule, request=incoming.data)]
        return AccessLogResult(entries=tuple(since), head=self.audit.head()), statements


    async def _access_log_rule(self, sender: Member, request: AccessLogRequest, now: int) -> str:
        """The rule that lets ``sender`` read the access log about this BSN: he is that client, or his gemachtigde;
        else Denied, which the client's own log shows."""
        matrix = self.pdp.matrix["access_log"]
        if sender.role == "client" and self.pdp.is_client(sender, request.bsn, request.bsn_key):
            return str(matrix["rule"])
        reason = "only the client himself may read the access log about his BSN, or his gemachtigde presenting " \
                 "his machtiging"
        if sender.role == "client" and request.machtiging is not None:
            held = await self.pdp.machtiging_for(sender, request.bsn, matrix["rule"], request.machtiging, now)
            if not isinstance(held, str):
                return str(matrix["machtiging"])
            reason = f"no machtiging of this client for his access log: {held}"
        denied = Denied(matrix["rule"], reason)
        denied.subjects.add(request.bsn)
        raise denied


def _refused(exc: RemoteProtocolError) -> Answer:
    return Answer(records=(), evidence=(), error=Error(code=exc.code.value, reason=exc.reason, rule=exc.rule))


__all__ = ["QueryHandlers", "ANSWERS_LIMIT"]
