"""Notifications under faults, with nodes as separate processes: every notification is
delivered, none is applied twice, and both audit chains verify."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from node.admin.client import AdminClient
from node.home import NodeHome
from tests.node.kit import reap, sample


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def iwlz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node", *args], capture_output=True, text=True, timeout=60)


class Party:
    def __init__(self, tmp: Path, name: str, *init: str) -> None:
        self.home = NodeHome(tmp / name)
        assert iwlz("init", str(self.home.path), *init).returncode == 0
        assert iwlz("cert", "issue", "--network", str(tmp / "net"), str(self.home.path)).returncode == 0
        config = self.home.config()
        config.outbox_first_delay, config.outbox_max_delay = 0.1, 0.5
        self.home.save_config(config)
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None

    def start(self, *extra: str, env: dict[str, str] | None = None) -> None:
        (self.home.path / "run.json").unlink(missing_ok=True)
        with open(self.home.path / "node.log", "a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "node", "run", str(self.home.path), "--no-mdns", "--port", str(self.port),
                 "--gossip-interval", "0.2", *extra],
                stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, **(env or {})})
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        assert line.startswith("ready "), (self.home.path / "node.log").read_text()[-2000:]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin(self) -> AdminClient:
        return AdminClient(self.home)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, sig)
            reap(self.proc)
            self.proc = None

    def wait_exit(self, timeout: float = 30) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        reap(self.proc)
        self.proc = None
        return code


def until(condition, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def indicaties(n: int) -> list[dict]:
    out = []
    for i in range(n):
        record = sample("wlzIndicaties", 0)
        record["wlzIndicatieID"] = str(uuid.UUID(int=(i + 1) * 7919, version=4))
        record["besluitnummer"] = f"{1000000000 + i}"
        out.append(record)
    return out


def pair(tmp: Path) -> tuple[Party, Party]:
    assert iwlz("network", "init", str(tmp / "net")).returncode == 0
    ciz = Party(tmp, "ciz", "--role", "ciz", "--name", "CIZ", "--kvk", "62253778")
    zk = Party(tmp, "zk", "--role", "zorgkantoor", "--name", "Zorgkantoor Noord", "--uzovi", "5151")
    return ciz, zk


def know_each_other(ciz: Party, zk: Party) -> None:
    until(lambda: len(ciz.admin().call("GET", "/admin/v1/peers")["peers"]) == 1, 30, "CIZ to learn the zorgkantoor")


def outbox(party: Party) -> list[dict]:
    return party.admin().call("GET", "/admin/v1/outbox")["outbox"]


def inbox(party: Party) -> list[dict]:
    return party.admin().call("GET", "/admin/v1/inbox")["inbox"]


def all_delivered(party: Party, n: int) -> bool:
    rows = outbox(party)
    return len(rows) == n and all(r["status"] == "delivered" for r in rows)


def check_outcome(ciz: Party, zk: Party, n: int) -> None:
    until(lambda: all_delivered(ciz, n), 90, f"{n} deliveries")
    until(lambda: all(r["status"] == "fetched" for r in inbox(zk)), 60, "the zorgkantoor to fetch every record")
    received = inbox(zk)
    assert len(received) == n == len({r["notification_id"] for r in received})
    assert {r["notification_id"] for r in received} == {r["notification_id"] for r in outbox(ciz)}
    assert all(r["fetched_version"] == 1 for r in received)
    for party in (ciz, zk):
        verify = iwlz("audit", str(party.home.path), "--verify")
        assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout


@pytest.mark.hardening
def test_receiver_down_while_100_records_change(tmp_path: Path) -> None:
    ciz, zk = pair(tmp_path)
    try:
        ciz.start()
        zk.start("--bootstrap", ciz.url)
        know_each_other(ciz, zk)
        zk.stop()
        for record in indicaties(100):
            ciz.admin().call("POST", "/admin/v1/records/WlzIndicatie", record)
        until(lambda: len(outbox(ciz)) == 100 and any(r["attempts"] >= 1 for r in outbox(ciz)), 30, "a failed attempt")
        time.sleep(3)  # several backoff steps (0.1 s doubling to 0.5 s here)
        rows = outbox(ciz)
        assert all(r["status"] == "pending" for r in rows)
        # One notification at a time probes the stopped receiver: far fewer attempts than notifications.
        assert sum(r["attempts"] for r in rows) < 40, sorted(r["attempts"] for r in rows)
        zk.start("--bootstrap", ciz.url)
        check_outcome(ciz, zk, 100)
    finally:
        ciz.stop()
        zk.stop()


@pytest.mark.hardening
def test_source_killed_while_delivering(tmp_path: Path) -> None:
    ciz, zk = pair(tmp_path)
    flag = tmp_path / "crash-ciz"
    flag.touch()
    try:
        ciz.start(env={"IWLZ_CRASH_AT": "after-delivery-before-commit", "IWLZ_CRASH_FLAG": str(flag)})
        zk.start("--bootstrap", ciz.url)
        know_each_other(ciz, zk)
        admin = ciz.admin()
        records = indicaties(100)
        try:
            for record in records:
                admin.call("POST", "/admin/v1/records/WlzIndicatie", record)
        except Exception:  # noqa: BLE001 - the source dies under our feet, as intended
            pass
        assert ciz.wait_exit() == 137  # killed after sending, before recording the delivery
        assert not flag.exists()
        ciz.start()
        stored = ciz.admin().call("GET", "/admin/v1/records/WlzIndicatie?limit=1000")["records"]
        for record in records[len(stored):]:  # what the dead source never acknowledged is sent again
            ciz.admin().call("POST", "/admin/v1/records/WlzIndicatie", record)
        check_outcome(ciz, zk, 100)
        duplicates = [e for e in json.loads(iwlz("--json", "audit", str(ciz.home.path), "--limit", "100000").stdout)
                      if e["event"].startswith("notification.sent") and e["result"] == "duplicate"]
        assert duplicates, "the notifications in flight at the crash were acknowledged as duplicates"
    finally:
        ciz.stop()
        zk.stop()


@pytest.mark.hardening
def test_receiver_killed_after_storing_before_acknowledging(tmp_path: Path) -> None:
    ciz, zk = pair(tmp_path)
    flag = tmp_path / "crash-zk"
    try:
        ciz.start()
        zk.start("--bootstrap", ciz.url)
        know_each_other(ciz, zk)
        zk.stop()
        flag.touch()
        zk.start("--bootstrap", ciz.url, env={"IWLZ_CRASH_AT": "after-inbox-commit", "IWLZ_CRASH_FLAG": str(flag)})
        for record in indicaties(20):
            ciz.admin().call("POST", "/admin/v1/records/WlzIndicatie", record)
        assert zk.wait_exit() == 137
        assert not flag.exists()
        zk.start("--bootstrap", ciz.url)
        check_outcome(ciz, zk, 20)
    finally:
        ciz.stop()
        zk.stop()


@pytest.mark.hardening
def test_a_returning_receiver_gets_its_backlog_within_seconds_from_the_sources_it_knows(tmp_path: Path) -> None:
    """The source's backoff has grown long, it gossips not at all, and the bootstrap node is down: only the
    returning node's announcement to the sources in its peer table (at start) can make its backlog due at once."""
    ciz, zk = pair(tmp_path)
    cak = Party(tmp_path, "cak", "--role", "cak", "--name", "CAK", "--kvk", "27364237")
    config = ciz.home.config()
    config.outbox_first_delay, config.outbox_max_delay, config.outbox_probe_max_delay = 1.0, 300.0, 300.0
    ciz.home.save_config(config)
    try:
        cak.start()
        ciz.start("--bootstrap", cak.url, "--gossip-interval", "0")
        zk.start("--bootstrap", cak.url)
        until(lambda: any(p["role"] == "zorgkantoor" for p in ciz.admin().call("GET", "/admin/v1/peers")["peers"]),
              30, "CIZ to learn the zorgkantoor")
        until(lambda: any(p["role"] == "ciz" for p in zk.admin().call("GET", "/admin/v1/peers")["peers"]),
              30, "the zorgkantoor to learn CIZ")
        zk.stop()
        cak.stop()
        for record in indicaties(20):
            ciz.admin().call("POST", "/admin/v1/records/WlzIndicatie", record)
        # The probe's backoff grows past what the test waits below (1, 2, 4, 8, then 16 s).
        until(lambda: max(r["attempts"] for r in outbox(ciz)) >= 5, 40, "the source to back off")
        zk.start("--bootstrap", cak.url, "--gossip-interval", "0")
        back = time.monotonic()
        until(lambda: all_delivered(ciz, 20), 5, "the backlog within 5 s of the receiver's start")
        assert time.monotonic() - back < 5
        received = inbox(zk)
        assert len(received) == 20 == len({r["notification_id"] for r in received})
    finally:
        for party in (ciz, zk, cak):
            party.stop()
    for party in (ciz, zk):
        verify = iwlz("audit", str(party.home.path), "--verify")
        assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout
