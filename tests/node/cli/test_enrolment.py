"""Self-enrolment end to end, as separate processes through the CLI: an enrolment service holding the root, nodes
that join with a token and never see the root, and a replica that comes back under a new key."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.discovery import free_ports
from keys import parse_revocation_list

from tests.node.cli.test_processes import Processes, iwlz
from tests.node.kit import reap


@pytest.fixture
def processes() -> Iterator[Processes]:
    procs = Processes()
    yield procs
    procs.stop_all()


@pytest.fixture
def enrolment(tmp_path: Path) -> Iterator[tuple[Path, str, int]]:
    """A network root, a free port for CIZ (the bootstrap node the service pushes revocations to), and the
    enrolment service as its own process."""
    net = tmp_path / "net"
    iwlz("network", "init", str(net), "--name", "swarm-test")
    # Two ports at once: the service given port 0 once took the one just found free for CIZ
    ciz_port, service_port = free_ports(2)
    proc = subprocess.Popen([sys.executable, "-m", "node", "enroll", "serve", "--network", str(net), "--port",
                             str(service_port), "--push", f"http://127.0.0.1:{ciz_port}"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("ready "), line
        yield net, line.split()[1], ciz_port
    finally:
        proc.terminate()
        reap(proc)
        if proc.stdout:
            proc.stdout.close()


def token(net: Path, out: Path, role: str, *extra: str) -> Path:
    iwlz("network", "enroll-token", str(net), "--role", role, "--out", str(out), *extra)
    return out


def peers(home: Path) -> list[dict[str, object]]:
    return list(json.loads(iwlz("--json", "peers", str(home)).stdout)["peers"])


def wait_for(check: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("not reached in time")


def test_nodes_join_with_tokens_and_a_replaced_replica_ends_its_predecessor(
        tmp_path: Path, enrolment: tuple[Path, str, int], processes: Processes) -> None:
    net, service, ciz_port = enrolment
    ciz_token = token(net, tmp_path / "ciz.token", "ciz", "--kvk", "62253778")
    za_token = token(net, tmp_path / "za.token", "zorgaanbieder", "--reusable")

    ciz = tmp_path / "ciz"
    iwlz("init", str(ciz), "--role", "ciz", "--name", "CIZ", "--kvk", "62253778")
    ciz_url = processes.start(ciz, "--port", str(ciz_port), "--enroll", service, "--token-file", str(ciz_token),
                              "--gossip-interval", "1")
    assert not (ciz / "root.key").exists() and "root.key" not in {p.name for p in ciz.iterdir()}

    def replica_of_slot_1(name: str) -> tuple[Path, dict[str, object]]:
        home = tmp_path / name
        iwlz("init", str(home), "--role", "zorgaanbieder", "--name", "Zorgaanbieder 1", "--agb", "98000001",
             "--region", "5151")
        processes.start(home, "--enroll", service, "--token-file", str(za_token), "--bootstrap", ciz_url,
                        "--gossip-interval", "1")
        return home, json.loads(iwlz("--json", "cert", "show", str(home)).stdout)

    first, old = replica_of_slot_1("za-slot1")
    old_did = old["did"]
    wait_for(lambda: any(p["did"] == old_did for p in peers(ciz)))

    # The replica's container is replaced: its disk is gone, the new one has a new key and the same AGB code.
    processes.kill(first)
    _, new = replica_of_slot_1("za-slot1-again")
    assert new["did"] != old_did and new["identifiers"] == {"agb": "98000001"}

    def one_member_with_the_agb() -> bool:
        holders = [p["did"] for p in peers(ciz) if p["identifiers"] == {"agb": "98000001"}]
        return holders == [new["did"]]
    wait_for(one_member_with_the_agb)
    issued = [json.loads(line) for line in (net / "issued.jsonl").read_text().splitlines()]
    assert [e["role"] for e in issued] == ["ciz", "zorgaanbieder", "zorgaanbieder"]
    adopted = [parse_revocation_list(f.read_bytes())[1] for f in (ciz / "revocations").glob("*.cbor")]
    assert [sorted(c.hex() for c in r.revoked) for r in adopted] == [[old["cert_id"]]]

    # A restart keeps the identity: no second enrolment.
    processes.kill(ciz)
    processes.start(ciz, "--port", str(ciz_port), "--enroll", service, "--token-file", str(ciz_token))
    assert len((net / "issued.jsonl").read_text().splitlines()) == 3


def test_what_a_token_does_not_allow_is_refused(tmp_path: Path, enrolment: tuple[Path, str, int]) -> None:
    net, service, _ = enrolment
    once = token(net, tmp_path / "once.token", "zorgkantoor", "--uzovi", "5151")
    za_token = token(net, tmp_path / "za.token", "zorgaanbieder", "--reusable")
    other_net = tmp_path / "other"
    iwlz("network", "init", str(other_net))
    foreign = token(other_net, tmp_path / "foreign.token", "zorgkantoor", "--reusable")

    def attempt(name: str, tok: Path, *init: str) -> subprocess.CompletedProcess[str]:
        home = tmp_path / name
        iwlz("init", str(home), *init)
        result = subprocess.run([sys.executable, "-m", "node", "run", str(home), "--no-mdns", "--enroll", service,
                                 "--token-file", str(tok), "--enroll-wait", "5"],
                                capture_output=True, text=True, timeout=60)
        assert not (home / "certificate.cwt").exists() or result.returncode == 0
        return result

    zk = ["--role", "zorgkantoor", "--name", "Zorgkantoor Noord", "--uzovi", "5151"]
    # A zorgaanbieder's token cannot make a CIZ (the "rogue CIZ").
    rogue = attempt("rogue", za_token, "--role", "ciz", "--name", "Rogue CIZ", "--kvk", "62253778")
    assert rogue.returncode == 2 and "the token is for a zorgaanbieder, not a ciz" in rogue.stderr
    # A token bound to 5151 cannot enrol 5050.
    wrong = attempt("wrong", once, "--role", "zorgkantoor", "--name", "Zorgkantoor Zuid", "--uzovi", "5050")
    assert wrong.returncode == 2 and "bound to another identity" in wrong.stderr
    # A token of another network's root is refused by this service.
    other = attempt("foreign", foreign, *zk)
    assert other.returncode == 2 and "another network root" in other.stderr
    assert not (net / "issued.jsonl").exists()

    # A single-use token works once; the second use is refused. (The node starts; stop it at once.)
    home = tmp_path / "zk"
    iwlz("init", str(home), *zk)
    proc = subprocess.Popen([sys.executable, "-m", "node", "run", str(home), "--no-mdns", "--quiet", "--enroll",
                             service, "--token-file", str(once)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("ready ")
    finally:
        proc.terminate()
        reap(proc)
        proc.stdout.close() if proc.stdout else None
    again = attempt("zk-again", once, *zk)
    assert again.returncode == 2 and "used before" in again.stderr
    assert len((net / "issued.jsonl").read_text().splitlines()) == 1


def test_a_node_renews_its_certificate_from_the_enrolment_service_before_it_ends(
        tmp_path: Path, processes: Processes) -> None:
    """A test network's certificates are short (the enrolment service's: 30 days by default), and a node that had
    one never enrolled again: at its end the swarm's nodes stopped answering, and restarted over their volumes
    they kept the ended one. A node that enrolled renews it, with the same key, once a third of its life is left
    (here, certificates of 12 s: after 8 s), and takes the renewed one up without a restart."""
    import urllib.request
    from datetime import datetime

    net = tmp_path / "net"
    iwlz("network", "init", str(net), "--name", "swarm-test")
    [port] = free_ports(1)
    service = subprocess.Popen([sys.executable, "-m", "node", "enroll", "serve", "--network", str(net), "--port",
                                str(port), "--valid-for", "12s"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    try:
        line = service.stdout.readline() if service.stdout else ""
        assert line.startswith("ready "), line
        ciz_token = token(net, tmp_path / "ciz.token", "ciz", "--kvk", "62253778", "--reusable")
        ciz = tmp_path / "ciz"
        iwlz("init", str(ciz), "--role", "ciz", "--name", "CIZ", "--kvk", "62253778")
        url = processes.start(ciz, "--enroll", line.split()[1], "--token-file", str(ciz_token))
        first = json.loads(iwlz("--json", "cert", "show", str(ciz)).stdout)
        wait_for(lambda: json.loads(iwlz("--json", "cert", "show", str(ciz)).stdout)["expires"] > first["expires"],
                 timeout=20)
        ended = datetime.fromisoformat(first["expires"].replace("Z", "+00:00")).timestamp()
        while time.time() < ended + 1:  # the first certificate has ended
            time.sleep(0.2)
        with urllib.request.urlopen(url + "/health", timeout=5) as health:
            assert health.status == 200 and json.loads(health.read())["did"] == first["did"]
        # Stopped until its certificate ended (a volume kept while the stack was down): it renews at its start.
        processes.kill(ciz)
        held = json.loads(iwlz("--json", "cert", "show", str(ciz)).stdout)["expires"]
        while time.time() < datetime.fromisoformat(held.replace("Z", "+00:00")).timestamp() + 1:
            time.sleep(0.2)
        processes.start(ciz, "--enroll", line.split()[1], "--token-file", str(ciz_token))
        now_held = json.loads(iwlz("--json", "cert", "show", str(ciz)).stdout)
        assert now_held["expires"] > held and now_held["did"] == first["did"]
        issued = [json.loads(entry) for entry in (net / "issued.jsonl").read_text().splitlines()]
        assert len(issued) >= 3 and {e["did"] for e in issued} == {first["did"]}
        assert not (net / "revocations.cbor").exists() or not parse_revocation_list(
            (net / "revocations.cbor").read_bytes())[1].revoked
    finally:
        service.terminate()
        reap(service)
        if service.stdout:
            service.stdout.close()
