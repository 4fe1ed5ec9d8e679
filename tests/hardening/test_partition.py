"""A network partition between two node processes in their own network namespaces.

The link between them goes down (5 s in the short form, 60 s with
IWLZ_LONG=1) while the source keeps changing records; when it comes back,
every notification is delivered exactly once, fetched, and both audit
chains verify. Needs root and iproute2; the namespaces, veths and bridge
are made here and removed afterwards, and all traffic stays inside them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from node.home import NetworkDir, NodeHome
from tests.hardening.conftest import LONG
from tests.netns import available, bridged_pair, sh
from tests.node.kit import SAMPLE, reap

if not available():
    pytest.skip("needs root and iproute2 to create network namespaces", allow_module_level=True)

SUBNET = "10.254.78"
PARTITION = 60.0 if LONG else 5.0


@pytest.fixture
def link() -> Iterator[dict[str, str]]:
    with bridged_pair("ip", SUBNET) as names:
        yield names


def iwlz(ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "node", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": os.getcwd()})


def start(ns: str, home: Path, ip: str, *extra: str) -> subprocess.Popen[str]:
    with open(home / "node.log", "a") as log:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "node", "run", str(home), "--no-mdns",
                                 "--host", ip, "--port", "8700", "--gossip-interval", "0.5", *extra],
                                stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    line = proc.stdout.readline() if proc.stdout else ""
    assert line.startswith("ready "), (home / "node.log").read_text()[-2000:]
    return proc


def rows(home: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(home / "node.sqlite3")) as db, db:
        return db.execute(sql).fetchall()


def wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_partition_loses_no_notification_and_applies_none_twice(tmp_path: Path, link: dict[str, str]) -> None:
    net = NetworkDir.create(tmp_path / "net", "test")
    homes = {}
    for name, role, org, ids in (("ciz", "ciz", "CIZ", {"kvk": "62253778"}),
                                 ("zk", "zorgkantoor", "Zorgkantoor Noord", {"uzovi": "5151"})):
        home = NodeHome.create(tmp_path / name, role=role, name=org, identifiers=ids, region=None)
        net.issue(home, now=int(time.time()), days=1)
        config = home.config()
        config.outbox_first_delay, config.outbox_max_delay = 0.2, 1.0
        home.save_config(config)
        homes[name] = home.path
    a_url = f"http://{link['a_ip']}:8700"
    procs = [start(link["a"], homes["ciz"], link["a_ip"], "--bootstrap", a_url)]
    try:
        procs.append(start(link["b"], homes["zk"], link["b_ip"], "--bootstrap", a_url))
        wait(lambda: rows(homes["ciz"], "SELECT count(*) FROM peers")[0][0] == 1, 20, "CIZ did not learn 5151")
        indicatie = dict(SAMPLE["wlzIndicaties"][0])
        (tmp_path / "ind.json").write_text(json.dumps(indicatie))
        assert iwlz(link["a"], "record", "put", str(homes["ciz"]), "WlzIndicatie", str(tmp_path / "ind.json")).returncode == 0
        wait(lambda: rows(homes["zk"], "SELECT status FROM inbox") == [("fetched",)], 20, "the first notification")

        sh("ip", "-n", link["bridge"], "link", "set", link["b_port"], "down")  # the partition
        changes = 5
        for n in range(changes):
            indicatie["besluitnummer"] = f"B-{n}"
            (tmp_path / "ind.json").write_text(json.dumps(indicatie))
            assert iwlz(link["a"], "record", "put", str(homes["ciz"]), "WlzIndicatie", str(tmp_path / "ind.json")).returncode == 0
        time.sleep(PARTITION)
        pending = rows(homes["ciz"], "SELECT count(*), max(attempts) FROM outbox WHERE status = 'pending'")[0]
        assert pending[0] == changes and pending[1] >= 1  # tried, and kept
        sh("ip", "-n", link["bridge"], "link", "set", link["b_port"], "up")  # healed

        wait(lambda: rows(homes["ciz"], "SELECT count(*) FROM outbox WHERE status = 'delivered'")[0][0] == changes + 1,
             30 + PARTITION, "the backlog after the partition")
        wait(lambda: rows(homes["zk"], "SELECT count(*) FROM inbox WHERE status = 'fetched'")[0][0] == changes + 1, 30,
             "fetching the backlog")
        received = rows(homes["zk"], "SELECT notification_id FROM inbox")
        sent = rows(homes["ciz"], "SELECT notification_id FROM outbox")
        assert sorted(received) == sorted(sent)  # each exactly once
        for ns, name in ((link["a"], "ciz"), (link["b"], "zk")):
            result = iwlz(ns, "audit", str(homes[name]), "--verify")
            assert result.returncode == 0, result.stdout + result.stderr
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
            reap(proc)
