"""A node's processes collect reference cycles less often than Python's default (node/tasks.py says why)."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from node.tasks import COLLECTOR_THRESHOLDS, tune_collector


def test_the_collector_thresholds_are_raised_and_cycles_still_go() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)  # Python's own (a test before may have run iwlz import in this process)
        tune_collector()
        assert gc.get_threshold() == COLLECTOR_THRESHOLDS and COLLECTOR_THRESHOLDS[0] > 700
    finally:
        gc.set_threshold(*before)


def test_a_process_with_the_raised_thresholds_does_not_keep_garbage_cycles() -> None:
    """Cycles made at the pace of a busy node are collected: memory stays flat over a million allocations."""
    program = """
import gc, resource
from node.tasks import tune_collector
tune_collector()
def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
class Node:
    def __init__(self): self.me = self; self.payload = bytearray(256)
for _ in range(50_000): Node()
first = rss()
for _ in range(1_000_000): Node()
print(rss() - first)
"""
    grown_kib = int(subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout)
    assert grown_kib < 64 * 1024, grown_kib  # a million cycles of ~400 bytes kept would be ~400 MB


def test_iwlz_import_collects_as_a_node_does(tmp_path: Path) -> None:
    """Its batches read ahead and in flight are thousands of live objects a full collection would walk for nothing."""
    from node.cli import main

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        main(["import", str(tmp_path / "no-node"), "WlzIndicatie", str(tmp_path / "none.jsonl")])
        assert gc.get_threshold() == COLLECTOR_THRESHOLDS
    finally:
        gc.set_threshold(*before)
