"""Notification throughput and backlog drain, one source and 10 receivers as separate processes on 127.0.0.1.

    python -m bench.notify [--records 2000] [--backlog 10000] [--receivers 10]

(1) With every receiver up, the source (CIZ) bulk-loads ``--records``
indicaties spread over the receivers (zorgkantoren); it prints the
notifications delivered and acted on per second (target >= 1,000/s).
(2) With every receiver down, it loads ``--backlog`` more, then starts the
receivers again and prints the time from their return until the whole
backlog is acknowledged and acted on (target <= 10 s; also the delivery
attempts made while the receivers were down). Each receiver acts on every
notification as a node does by default: it fetches the indicatie back from
the source with QIR-0001-ZKi (batched: ``queries``). Both figures count a
notification once its receiver has acted on it, not when it is acknowledged.
(1b) With ``--busy N``, between the two: N indicaties for one receiver, then
one for each of the others: the time until the others have acted on theirs
(an import for one zorgkantoor must not hold up everyone else's).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

from bench.procs import compile_bytecode, cpu_seconds
from node.admin.client import AdminClient
from node.home import NetworkDir, NodeHome


class Proc:
    def __init__(self, home: NodeHome, port: int, *extra: str) -> None:
        self.home, self.port, self.extra = home, port, extra
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        (self.home.path / "run.json").unlink(missing_ok=True)
        with open(self.home.path / "node.log", "a") as log:  # one process per node: up to 51 nodes share the cores
            self.proc = subprocess.Popen([sys.executable, "-m", "node", "run", str(self.home.path), "--quiet", "--no-mdns", "--workers", "1",
                                          "--port", str(self.port), *self.extra],
                                         stdout=subprocess.PIPE, stderr=log, text=True)

    def wait_ready(self) -> float:
        """Wait for the node's "ready" line; the CPU seconds its start took."""
        assert self.proc is not None and self.proc.stdout is not None and self.proc.stdout.readline().startswith("ready")
        return cpu_seconds(self.proc.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid) if self.proc is not None else 0.0

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None


def indicaties(n: int, receivers: int, template: dict, *, first: int = 0, seed: int | None = None) -> list[dict]:
    """n indicaties for the receivers' zorgkantoren in turn, from the ``first``'th receiver on."""
    rng = random.Random(n if seed is None else seed)
    out = []
    for i in range(n):
        record = json.loads(json.dumps(template))
        record["wlzIndicatieID"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        record["initieelVerantwoordelijkZorgkantoor"] = f"{5100 + first + i % receivers}"
        out.append(record)
    return out


def load(admin: AdminClient, records: list[dict]) -> None:
    for start in range(0, len(records), 1000):
        admin.call("POST", "/admin/v1/records/WlzIndicatie/bulk", records[start:start + 1000])


def wait_delivered(admin: AdminClient, total: int, timeout: float = 600) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        stats = admin.call("GET", "/admin/v1/outbox/stats")
        if stats.get("delivered_since_start", 0) >= total:  # the source runs throughout
            return time.monotonic() - started
        time.sleep(0.05)
    raise RuntimeError(f"not delivered in time: {stats}")


def acted_on(receivers: list[Proc]) -> tuple[int, int]:
    """(notifications acted on, of which fetched back) over every receiver, read from their stores."""
    acted = fetched = 0
    for r in receivers:
        with closing(sqlite3.connect(f"file:{r.home.database_path}?mode=ro", uri=True, timeout=10)) as db, db:
            for status, count in db.execute("SELECT status, count(*) FROM inbox WHERE status != 'received' GROUP BY status"):
                acted += count
                fetched += count if status == "fetched" else 0
    return acted, fetched


def not_fetched(receivers: list[Proc]) -> dict[str, int]:
    """How the notifications not fetched back ended: status and reason, counted over every receiver."""
    counts: dict[str, int] = {}
    for r in receivers:
        with closing(sqlite3.connect(f"file:{r.home.database_path}?mode=ro", uri=True, timeout=10)) as db, db:
            for status, detail, count in db.execute(
                    "SELECT status, detail, count(*) FROM inbox WHERE status != 'fetched' GROUP BY status, detail"):
                key = f"{status}: {(detail or '')[:120]}"
                counts[key] = counts.get(key, 0) + count
    return counts


def wait_acted_on(receivers: list[Proc], total: int, timeout: float = 600) -> tuple[float, int]:
    """Seconds until every receiver acted on every notification (fetched the record back, unless --no-fetch), and
    how many were fetched."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        acted, fetched = acted_on(receivers)
        if acted >= total:
            return time.monotonic() - started, fetched
        time.sleep(0.05)
    raise RuntimeError(f"not acted on in time: {acted} of {total}")


def one_busy(admin: AdminClient, receivers: list[Proc], busy: int, template: dict, done: int) -> tuple[float, float]:
    """Seconds until the other receivers acted on one notification each, loaded right after ``busy`` for the first
    receiver; and until that one acted on all of its."""
    others = receivers[1:]
    before = acted_on(others)[0]
    load(admin, indicaties(busy, 1, template, seed=busy + 1))
    started = time.monotonic()
    load(admin, indicaties(len(others), len(others), template, first=1, seed=busy + 2))
    wait_acted_on(others, before + len(others))
    others_s = time.monotonic() - started
    wait_acted_on(receivers, done + busy + len(others))
    return others_s, time.monotonic() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--backlog", type=int, default=10000)
    parser.add_argument("--receivers", type=int, default=10)
    parser.add_argument("--no-fetch", action="store_true", help="receivers only store and acknowledge")
    parser.add_argument("--busy", type=int, default=0, help="then this many for one receiver and one for each other "
                        "right after: the time until the others acted on theirs")
    parser.add_argument("--gossip-interval", type=float, help="seconds between a node's gossip rounds (default: the "
                        "node's own, 30 s)")
    measure(parser.parse_args(argv))


def measure(args: Any) -> dict[str, float]:
    """Delivery rate with every receiver up, then the drain time of a backlog; ``args`` as main's."""
    compile_bytecode()
    tmp = Path(tempfile.mkdtemp(prefix="iwlz-notify-"))
    procs: list[Proc] = []
    try:
        net = NetworkDir.create(tmp / "net", "bench")
        ciz = NodeHome.create(tmp / "ciz", role="ciz", name="CIZ", identifiers={"kvk": "62253778"}, region=None)
        net.issue(ciz, now=int(time.time()), days=1)
        # Nodes gossip at their own interval (30 s) unless told: a receiver introduces itself to the source when it
        # starts, which is all the source needs to deliver to it.
        gossip = ["--gossip-interval", str(args.gossip_interval)] if args.gossip_interval is not None else []
        source = Proc(ciz, 18700, *gossip)
        source.start()
        procs.append(source)
        receivers = []
        for i in range(args.receivers):
            home = NodeHome.create(tmp / f"zk{i}", role="zorgkantoor", name=f"Zorgkantoor {i}",
                                   identifiers={"uzovi": f"{5100 + i}"}, region=None)
            net.issue(home, now=int(time.time()), days=1)
            if args.no_fetch:
                config = home.config()
                config.inbox_fetch = False
                home.save_config(config)
            receivers.append(Proc(home, 18710 + i, *gossip, "--bootstrap", f"http://127.0.0.1:{source.port}"))
        for r in receivers:
            r.start()
            procs.append(r)
        admin = AdminClient(ciz)
        while len(admin.call("GET", "/admin/v1/peers")["peers"]) < args.receivers:
            time.sleep(0.1)
        template = json.loads((Path(__file__).resolve().parents[1] / "node" / "cli" / "sample.json").read_text())["wlzIndicaties"][0]

        records = indicaties(args.records, args.receivers, template)
        started = time.monotonic()
        load(admin, records)
        loaded = time.monotonic() - started
        acknowledged = wait_delivered(admin, args.records) + loaded
        elapsed = wait_acted_on(receivers, args.records)[0] + acknowledged
        print(f"1 source, {args.receivers} receivers (separate processes on 2 cores), "
              f"{'receivers only store and acknowledge' if args.no_fetch else 'receivers fetch each record back'}")
        print(f"{args.records} notifications acknowledged in {acknowledged:.1f} s and acted on (each record fetched back) "
              f"in {elapsed:.1f} s (bulk load of the records {loaded:.1f} s included): {args.records / elapsed:,.0f}/s  "
              f"(target >= 1,000/s)")

        done = args.records
        others_s = busy_s = 0.0
        if args.busy:
            others_s, busy_s = one_busy(admin, receivers, args.busy, template, done)
            done += args.busy + len(receivers) - 1
            print(f"{args.busy} notifications for one receiver, then one for each of the {len(receivers) - 1} others: "
                  f"the others acted on theirs in {others_s:.2f} s, the one on its {args.busy} in {busy_s:.1f} s")
        for r in receivers:
            r.stop()
        backlog = indicaties(args.backlog, args.receivers, template)
        for record in backlog:
            record["besluitnummer"] = "9" + record["besluitnummer"][1:]
        load(admin, backlog)
        time.sleep(2)
        stats = admin.call("GET", "/admin/v1/outbox/stats")
        with closing(sqlite3.connect(f"file:{ciz.database_path}?mode=ro", uri=True)) as db, db:
            (attempts,) = db.execute("SELECT coalesce(sum(attempts), 0) FROM outbox WHERE status = 'pending'").fetchone()
        back, source_cpu = time.monotonic(), source.cpu()
        for r in receivers:  # all at once, as after a network outage
            r.spawn()
        start_cpu = sum(r.wait_ready() for r in receivers)
        ready = time.monotonic() - back  # what the source can deliver to a receiver waits for its start
        wait_delivered(admin, done + args.backlog)
        acknowledged = time.monotonic() - back
        drain, fetched = wait_acted_on(receivers, done + args.backlog)
        # On one machine the receivers' starts share its cores with the drain: what each part cost, in CPU seconds.
        drain_cpu = source.cpu() - source_cpu + sum(r.cpu() for r in receivers)
        failed = not_fetched(receivers) if fetched < done + args.backlog and not args.no_fetch else {}
        drain += acknowledged
        after_ready = drain - ready
        print(f"backlog of {args.backlog} (outbox before the receivers returned: {stats}; {attempts} delivery attempts "
              f"while they were down) acknowledged {acknowledged:.1f} s and acted on {drain:.1f} s after they were "
              f"started again  (target <= 10 s; the last receiver was ready after {ready:.1f} s, and the backlog acted on {after_ready:.1f} s "
              f"later); {fetched} of "
              f"{done + args.backlog} records fetched back; CPU in that time {drain_cpu:.1f} s, of which the "
              f"receivers' starts {start_cpu:.1f} s ({start_cpu / len(receivers):.2f} s each)")
        verify = subprocess.run([sys.executable, "-m", "node", "audit", str(ciz.path), "--verify"], capture_output=True, text=True)
        print(f"source audit: {verify.stdout.strip()}")
        if failed:
            print(f"not fetched back when the backlog was acted on (a receiver tries these again later): {failed}")
        return {"rate": args.records / elapsed, "drain_s": drain, "receivers_ready_s": ready, "drain_after_ready_s": after_ready,
                "drain_cpu_s": drain_cpu, "receivers_start_cpu_s": start_cpu,
                "attempts_while_down": attempts, **({"others_s": others_s, "busy_s": busy_s} if args.busy else {})}
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
