"""Soak (long form only): five node processes under a steady load of signed queries and record changes
for ten minutes; memory, open files and latency are sampled every 30 s and must stay flat.

    IWLZ_LONG=1 .venv/bin/python -m pytest -s tests/hardening/test_soak.py      (IWLZ_SOAK_SECONDS to shorten)
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import statistics
import time
import urllib.request
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest

from node.home import NetworkDir
from protocol import MEDIA_TYPE, Endpoint, Query
from bench.procs import open_files, status_kib
from tests.hardening.conftest import long_only
from tests.hardening.kit import NodeProcess, raise_file_limit
from tests.helpers import Network as Keys
from tests.helpers import seeded
from tests.node.kit import SAMPLE

SECONDS = float(os.environ.get("IWLZ_SOAK_SECONDS", "600"))
WINDOW = min(30.0, SECONDS / 4)
QUERIES_PER_SECOND = 40


def rss_kib(pid: int) -> int:
    return status_kib(pid, "VmRSS")


def admin_put(node: NodeProcess, kind: str, record: dict) -> None:
    info = json.loads((node.home.path / "run.json").read_text())
    request = urllib.request.Request(f"{info['admin_url']}/admin/v1/records/{kind}", data=json.dumps(record).encode(),
                                     method="POST", headers={"Authorization": f"Bearer {node.home.admin_token()}",
                                                             "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@long_only()
@pytest.mark.asyncio
async def test_ten_minutes_of_steady_load_leave_memory_files_and_latency_flat(tmp_path: Path) -> None:
    raise_file_limit(4096)
    net = NetworkDir.create(tmp_path / "net", "soak")
    nodes = {name: NodeProcess(tmp_path, name, net) for name in ("ciz", "zk5151", "zk5050", "za_a", "cak")}
    nodes["ciz"].start()
    for name, node in nodes.items():
        if name != "ciz":
            node.start("--bootstrap", nodes["ciz"].url, "--gossip-interval", "5")
    keys = Keys(root=net.root())
    load = Endpoint(seeded(11), keys.certificate(seeded(11), "zorgkantoor", identifiers={"uzovi": "5151"}), keys.trust())
    dids = {name: node.home.identity().did for name, node in nodes.items()}
    samples: list[dict[str, float]] = []
    latencies: list[float] = []
    errors = 0
    try:
        started = time.monotonic()
        next_window = started + WINDOW
        indicatie = dict(SAMPLE["wlzIndicaties"][0])
        async with aiohttp.ClientSession() as http:
            n = 0
            while time.monotonic() - started < SECONDS:
                target = list(nodes)[n % len(nodes)]
                query = Query(template="RECORD-STATUS", params={"kind": "WlzIndicatie", "id": indicatie["wlzIndicatieID"]},
                              evidence=(), history=False)
                data = load.send(query, to=dids[target], now=int(time.time())).data
                t0 = time.monotonic()
                async with http.post(nodes[target].url + "/iwlz/v1/messages", data=io.BytesIO(data),
                                     headers={"Content-Type": MEDIA_TYPE}) as response:
                    await response.read()
                    errors += response.status >= 500
                latencies.append(time.monotonic() - t0)
                if n % QUERIES_PER_SECOND == 0:  # a record change a second: notifications flow
                    indicatie["besluitnummer"] = f"B-{n}"
                    await asyncio.to_thread(admin_put, nodes["ciz"], "WlzIndicatie", indicatie)
                n += 1
                await asyncio.sleep(max(0.0, t0 + 1 / QUERIES_PER_SECOND - time.monotonic()))
                if time.monotonic() >= next_window:
                    pids = [node.proc.pid for node in nodes.values() if node.proc]
                    window = sorted(latencies)
                    samples.append({"t": time.monotonic() - started,
                                    "rss_mib": sum(rss_kib(p) for p in pids) / 1024 / len(pids),
                                    "files": sum(open_files(p) for p in pids) / len(pids),
                                    "p50_ms": 1000 * statistics.median(window),
                                    "p99_ms": 1000 * window[int(len(window) * 0.99) - 1]})
                    latencies.clear()
                    next_window += WINDOW
        print("\n   t (s)  RSS/node (MiB)  open files/node  p50 (ms)  p99 (ms)")
        for s in samples:
            print(f"{s['t']:8.0f} {s['rss_mib']:15.1f} {s['files']:16.1f} {s['p50_ms']:9.2f} {s['p99_ms']:9.2f}")
        first, last = samples[0], samples[-1]
        assert errors == 0
        assert last["rss_mib"] <= first["rss_mib"] * 1.3 + 10, "memory grows"
        assert last["files"] <= first["files"] + 10, "open files grow"
        assert last["p99_ms"] <= max(3 * first["p99_ms"], 50), "latency grows"
        import sqlite3

        with closing(sqlite3.connect(nodes["ciz"].home.database_path)) as db, db:
            statuses = dict(db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
        print(f"CIZ outbox after the soak: {statuses}")
        assert statuses.get("dead", 0) == 0 and statuses.get("pending", 0) <= 2 and statuses.get("delivered", 0) > 0
        for node in nodes.values():
            assert node.errors_in_log() == [], node.errors_in_log()[:5]
    finally:
        for node in nodes.values():
            node.stop()
