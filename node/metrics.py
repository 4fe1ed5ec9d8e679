"""Prometheus metrics of one node (its own registry, so several nodes can share a process)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


MAX_LATENCIES = 20_000  # per tally and type: beyond it the latencies a worker hands over are a sample


class Metrics:
    """``tally``: a worker process also keeps what it counted since it last handed its counts to the process that
    owns writes, whose /metrics then shows the whole node (node/relay)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, *, tally: bool = False) -> None:
        self._tally: dict[str, dict[Any, Any]] | None = {"requests": {}, "decisions": {}, "latency": {}} if tally else None
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("iwlz_requests", "Peer messages handled, by type and outcome (ok or error code)",
                                ["type", "outcome"], registry=self.registry)
        self.latency = Histogram("iwlz_request_seconds", "Time to handle a peer message, store commit included",
                                 ["type"], registry=self.registry,
                                 buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
        self.decisions = Counter("iwlz_policy_decisions", "Access decisions, by rule and result",
                                 ["rule", "result"], registry=self.registry)
        self.records = Gauge("iwlz_store_records", "Current (not deleted) records in the registers", registry=self.registry)
        self.audit_entries = Gauge("iwlz_audit_entries", "Entries in the audit log", registry=self.registry)
        self._request_children: dict[tuple[str, str], Any] = {}
        self._latency_children: dict[str, Any] = {}
        self._decision_children: dict[tuple[str, str], Any] = {}
        self.peers = Gauge("iwlz_peers", "Peers in the peer table", registry=self.registry)
        self.gossip_budget = Gauge("iwlz_gossip_round_budget_bytes",
                                   "Bytes of announcements and digests this node hands out per gossip round, at most",
                                   registry=self.registry)
        self.gossip_told = Gauge("iwlz_gossip_told_table",
                                 "The largest table a peer said it holds in the last two gossip rounds (at most 16,384): "
                                 "the budget follows it while this node's own table is smaller",
                                 registry=self.registry)
        self.clock_offset = Gauge("iwlz_clock_offset_seconds",
                                  "Median of peers' signed times minus this node's clock (positive: peers are ahead)",
                                  registry=self.registry)
        self.outbox = Gauge("iwlz_outbox_notifications", "Notifications in the outbox, by status (pending, dead)",
                            ["status"], registry=self.registry)
        self.inbox = Gauge("iwlz_inbox_notifications", "Notifications received and not yet acted on, by status "
                           "(received: being acted on; fetch-failed: their sender did not answer, asked again later)",
                           ["status"], registry=self.registry)
        self.witnessed_age = Gauge("iwlz_audit_witnessed_age_seconds",
                                   "Seconds since a witness last acknowledged this node's audit head (-1: never)",
                                   registry=self.registry)
        self.meldingen_overdue = Gauge("iwlz_meldingen_overdue",
                                       "Meldingen received and still open past their deadline of one working day",
                                       registry=self.registry)

    def count_request(self, kind: str, outcome: str) -> None:
        child = self._request_children.get((kind, outcome))
        if child is None:
            child = self._request_children[(kind, outcome)] = self.requests.labels(kind, outcome)
        child.inc()
        if self._tally is not None:
            counts = self._tally["requests"]
            counts[(kind, outcome)] = counts.get((kind, outcome), 0) + 1

    def observe_latency(self, kind: str, seconds: float) -> None:
        child = self._latency_children.get(kind)
        if child is None:
            child = self._latency_children[kind] = self.latency.labels(kind)
        child.observe(seconds)
        if self._tally is not None:
            seen = self._tally["latency"].setdefault(kind, [])
            if len(seen) < MAX_LATENCIES:
                seen.append(seconds)

    def count_decision(self, rule: str, result: str) -> None:
        child = self._decision_children.get((rule, result))
        if child is None:
            child = self._decision_children[(rule, result)] = self.decisions.labels(rule, result)
        child.inc()
        if self._tally is not None:
            counts = self._tally["decisions"]
            counts[(rule, result)] = counts.get((rule, result), 0) + 1

    def take_tally(self) -> list[Any]:
        """What was counted since the last call, as plain data: [[type, outcome, n]], [[rule, result, n]],
        [[type, [seconds]]]."""
        if self._tally is None:
            return [[], [], []]
        tally, self._tally = self._tally, {"requests": {}, "decisions": {}, "latency": {}}
        return [[[k, o, n] for (k, o), n in tally["requests"].items()],
                [[r, res, n] for (r, res), n in tally["decisions"].items()],
                [[k, seconds] for k, seconds in tally["latency"].items()]]

    def add_tally(self, tally: Any) -> None:
        """Counts a worker handed over (``take_tally``); ValueError if it is not one."""
        try:
            requests, decisions, latency = tally
            for kind, outcome, n in requests:
                self._label(self._request_children, self.requests, str(kind), str(outcome)).inc(int(n))
            for rule, result, n in decisions:
                self._label(self._decision_children, self.decisions, str(rule), str(result)).inc(int(n))
            for kind, seconds in latency:
                child = self._latency_children.get(str(kind)) or self.latency.labels(str(kind))
                self._latency_children[str(kind)] = child
                for value in seconds[:MAX_LATENCIES]:
                    child.observe(float(value))
        except (TypeError, ValueError) as exc:
            raise ValueError("not a tally of counts") from exc

    @staticmethod
    def _label(children: dict[tuple[str, str], Any], metric: Any, first: str, second: str) -> Any:
        child = children.get((first, second))
        if child is None:
            child = children[(first, second)] = metric.labels(first, second)
        return child

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["Metrics"]
