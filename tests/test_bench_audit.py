"""The audit benchmark builds its chain as the node stores one: a check of it must pass (it did not after the
stored columns changed, and the benchmark failed only when someone ran it)."""

from __future__ import annotations

from bench import audit


def test_the_audit_benchmark_builds_a_chain_the_node_accepts() -> None:
    result = audit.measure(500, 50)  # asserts that the full and the incremental check both find the chain intact
    assert set(result) == {"full_ms", "incremental_ms"}
