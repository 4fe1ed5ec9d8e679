"""The outbox benchmark writes rows through the node's own statement into a store of the node's schema, and checks
that every one is stored: if either changes so that they no longer fit, this fails here, not only when someone runs
the benchmark."""

from __future__ import annotations

from bench import outbox


def test_the_outbox_benchmark_writes_rows_the_node_would() -> None:
    result = outbox.measure(1200)
    assert set(result) == {"ordered_us", "random_us", "ratio"} and all(v > 0 for v in result.values())
