"""Prometheus metrics of one node (its own registry, so several nodes can share a process)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
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
        self.clock_offset = Gauge("iwlz_clock_offset_seconds",
                                  "Median of peers' signed times minus this node's clock (positive: peers are ahead)",
                                  registry=self.registry)
        self.outbox = Gauge("iwlz_outbox_notifications", "Notifications in the outbox, by status (pending, dead)",
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

    def observe_latency(self, kind: str, seconds: float) -> None:
        child = self._latency_children.get(kind)
        if child is None:
            child = self._latency_children[kind] = self.latency.labels(kind)
        child.observe(seconds)

    def count_decision(self, rule: str, result: str) -> None:
        child = self._decision_children.get((rule, result))
        if child is None:
            child = self._decision_children[(rule, result)] = self.decisions.labels(rule, result)
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["Metrics"]
