"""Every benchmark in one go: one table with targets, medians over the runs, and whether each target is met.

    python -m bench [--runs 3] [--quick] [--only NAME[,NAME]] [--json FILE]

Each benchmark measures its ratios within one run (the node against a bare
server, the incremental audit check against the full one); the table gives
the median of ``--runs`` runs and every run's value. ``--quick`` uses small
sizes (a smoke test of the benchmarks, minutes); the default sizes are the
ones the targets speak of (1,000,000 records and entries, 2,033 gossiping
nodes) and take a long while on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any


@dataclass(frozen=True)
class Target:
    metric: str
    unit: str
    bound: float | None  # None: shown, no target
    higher_is_better: bool = True

    def met(self, value: float) -> str:
        if self.bound is None:
            return ""
        return "yes" if (value >= self.bound if self.higher_is_better else value <= self.bound) else "NO"

    def text(self) -> str:
        if self.bound is None:
            return ""
        return f"{'>=' if self.higher_is_better else '<='} {self.bound:g}"


def _idle_rss() -> dict[str, float]:
    """A CIZ node's resident memory once it is ready, as its own process."""
    from bench.procs import compile_bytecode, status_kib
    from node.home import NetworkDir, NodeHome

    compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="iwlz-bench-rss-") as tmp:
        net = NetworkDir.create(Path(tmp) / "net", "bench")
        home = NodeHome.create(Path(tmp) / "ciz", role="ciz", name="CIZ", identifiers={"kvk": "62253778"}, region=None)
        net.issue(home, now=int(time.time()), days=1)
        proc = subprocess.Popen([sys.executable, "-m", "node", "run", str(home.path), "--quiet", "--no-mdns", "--workers", "1",
                                 "--gossip-interval", "0"], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().startswith("ready")
            time.sleep(2)
            rss = status_kib(proc.pid, "VmRSS")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            if proc.stdout:
                proc.stdout.close()
    return {"rss_mib": rss / 1024}


def _transfer(records: int) -> dict[str, float]:
    from bench.transfer import run

    results = {(r["format"], r["run"]): r for r in run(records, ["jsonl"], None)}
    first, second = results["jsonl", "first"], results["jsonl", "second"]
    return {"rate": first["records_per_s"], "rerun_new_versions": second["versions"] - first["versions"],
            "bytes_per_record": first["db_bytes_per_record"], "node_peak_mib": second["node_peak_mib"],
            "import_peak_mib": first["import_peak_mib"]}


def benchmarks(quick: bool) -> list[tuple[str, Callable[[], dict[str, float]], list[Target]]]:
    from bench import audit, discovery, envelope, gossip, notify, outbox, query, replay

    size = 10_000 if quick else 1_000_000
    backlog = 1_000 if quick else 10_000
    out: list[tuple[str, Callable[[], dict[str, float]], list[Target]]] = [
        ("envelope", lambda: envelope.measure(0.5 if quick else 2.0),
         [Target("envelope receive (sealed query)", "x bare verify", None)]),
    ]
    out.append(("replay guard, 1,000,000 ids" if not quick else "replay guard, 100,000 ids",
                lambda: replay.measure(100_000 if quick else 1_000_000),
                [Target("bytes_per_id", "B", None, False), Target("ratio", "x before", None, False),
                 Target("checks_per_s", "/s", None)]))
    for loop in ("asyncio", "uvloop"):
        out.append((f"query over HTTP, 64 in flight, {loop}",
                     lambda loop=loop: query.bench_http(3 if quick else 10, 64, loop),  # type: ignore[misc]
                     [Target("ratio", "x bare", 0.6), Target("node_p99_ms", "ms", 25, False),
                      Target("node_rate", "req/s", None), Target("bare_rate", "req/s", None)]))
    out.append(("query over HTTP, one worker per core against one",
                lambda: query.bench_workers(3 if quick else 10, 64, "uvloop"),
                [Target("ratio", "x one worker", 1.1), Target("many_rate", "req/s", None),
                 Target("one_rate", "req/s", None), Target("many_p99_ms", "ms", None, False),
                 Target("chains_intact", "", 1.0)]))
    for records in ([10_000] if quick else [10_000, 100_000, 1_000_000]):
        out.append((f"query over HTTP, register of {records:,}, random records",
                    # 60 s in full: the node's memory after 100,000 queries and more
                    lambda records=records: query.bench_register_size(records, 3 if quick else 60),  # type: ignore[misc]
                    [Target("rate", "req/s", None), Target("p50_ms", "ms", None, False),
                     Target("p99_ms", "ms", 25, False), Target("queries", "queries", None),
                     Target("rss_mib", "MiB", None, False), Target("peak_mib", "MiB", None, False)]))
    for records in ([10_000] if quick else [10_000, 100_000, 1_000_000]):
        out.append((f"query by BSN at the store, {records:,} records",
                    lambda records=records: asyncio.run(query.bench_store(records)),  # type: ignore[misc]
                    [Target("query_p50_ms", "ms", 0.5, False), Target("query_p99_ms", "ms", None, False)]))
    out += [
        (f"import into a running node, {size:,} records", lambda: _transfer(size),
         [Target("rate", "records/s", 20_000), Target("rerun_new_versions", "versions", 0, False),
          Target("bytes_per_record", "B", 1500, False), Target("node_peak_mib", "MiB", None, False),
          Target("import_peak_mib", "MiB", None, False)]),
        (f"outbox rows, {10 * size if quick else size:,}", lambda: outbox.measure(10 * size if quick else size),
         [Target("ratio", "x random ids", None, False), Target("ordered_us", "µs", None, False),
          Target("random_us", "µs", None, False)]),
        (f"notifications, 10 receivers, fetch-back, backlog {backlog:,}",
         lambda: notify.measure(SimpleNamespace(records=2000 if not quick else 500, backlog=backlog, busy=20_000,
                                                receivers=10, no_fetch=False, gossip_interval=None)),
         # The drain target is for a backlog of 10,000: a quick run's smaller one is not held to it.
         [Target("rate", "/s", 1000), Target("drain_s", "s", None if quick else 10, False),
          Target("receivers_ready_s", "s", None, False), Target("drain_after_ready_s", "s", None, False),
          Target("attempts_while_down", "attempts", None, False),
          # 20,000 for one receiver, then one for each other: how long the others wait for theirs
          Target("others_s", "s", None, False), Target("busy_s", "s", None, False)]),
    ]
    if not quick:
        out.append(("notifications, 50 receivers, fetch-back",
                    lambda: notify.measure(SimpleNamespace(records=2000, backlog=10_000, receivers=50, no_fetch=False, gossip_interval=None,
                                                           busy=0)),
                    [Target("rate", "/s", 800), Target("drain_s", "s", 10, False),
                     Target("receivers_ready_s", "s", None, False), Target("drain_after_ready_s", "s", None, False),
                     # 51 processes on this machine's cores: the CPU the receivers' starts took of the drain's
                     Target("drain_cpu_s", "CPU s", None, False), Target("receivers_start_cpu_s", "CPU s", None, False)]))
    for entries in ([10_000] if quick else [10_000, 1_000_000]):
        out.append((f"audit check, {entries:,} entries + 1,000 new",
                    lambda entries=entries: audit.measure(entries, 1000),  # type: ignore[misc]
                    [Target("incremental_ms", "ms", None, False), Target("full_ms", "ms", None, False)]))
    for providers in ([217] if quick else [217, 2000, 9967]):  # 10,000 nodes: ~4 GB and most of an hour a run
        # A run of the simulation is exact for its seed: each run takes the next seed, so the runs differ.
        out.append((f"gossip, {providers + 33:,} simulated nodes",
                    lambda providers=providers, seeds=itertools.count(1): gossip.measure(  # type: ignore[misc]
                        SimpleNamespace(providers=providers, fanout=3, seed=next(seeds), max_rounds=40)),
                    [Target("rounds", "rounds", 12, False), Target("max_sent_ratio", "x total", 3, False),
                     Target("change_rounds", "rounds", 12, False)]))
    out += [
        ("discovery, 20 real nodes", lambda: discovery.measure(SimpleNamespace(nodes=20, interval=1.0, runs=1)),
         [Target("full_tables_s", "s", None, False), Target("revocation_s", "s", None, False)]),
        ("node memory, idle", _idle_rss, [Target("rss_mib", "MiB", 80, False)]),
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of every benchmark")
    parser.add_argument("--only", help="comma-separated words; runs the benchmarks whose name holds one")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)
    chosen = [b for b in benchmarks(args.quick)
              if not args.only or any(word in b[0] for word in args.only.split(","))]
    rows: list[dict[str, Any]] = []
    for name, measure, targets in chosen:
        values: list[dict[str, float]] = []
        for run in range(args.runs):
            print(f"--- {name} (run {run + 1} of {args.runs})", flush=True)
            values.append(measure())
        for target in targets:
            runs = [v[target.metric] for v in values]
            median = statistics.median(runs)
            rows.append({"benchmark": name, "metric": target.metric, "unit": target.unit, "target": target.text(),
                         "median": median, "runs": runs, "met": target.met(median)})
    print()
    print(f"{'benchmark':48} {'metric':34} {'target':>10} {'median':>12} {'met':>4}  runs")
    for row in rows:
        runs = ", ".join(f"{v:,.3g}" for v in row["runs"])
        print(f"{row['benchmark']:48} {row['metric'] + ' (' + row['unit'] + ')':34} {row['target']:>10} "
              f"{row['median']:12,.4g} {row['met']:>4}  {runs}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
