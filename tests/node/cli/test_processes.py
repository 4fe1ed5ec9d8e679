"""End to end: nodes as separate processes, driven through the iwlz CLI only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tests.node.kit import reap, sample

IND0 = "31835d1d-3933-4ffe-9f57-8985f41fae4a"
SPEC0 = "d9cf7a0c-449a-4166-8186-68568c529b48"


def iwlz(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "node", *args], capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"iwlz {' '.join(args)} failed: {result.stderr}")
    return result


class Processes:
    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def start(self, home: Path, *extra: str) -> str:
        with open(home / "node.log", "a") as log:
            proc = subprocess.Popen([sys.executable, "-m", "node", "run", str(home), "--quiet", "--no-mdns", *extra],
                                    stdout=subprocess.PIPE, stderr=log, text=True)
        self.procs[str(home)] = proc
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("ready "), (home / "node.log").read_text()
        return line.split()[1]

    def kill(self, home: Path, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(str(home))
        os.kill(proc.pid, sig)
        reap(proc)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            reap(proc)


@pytest.fixture
def processes() -> Iterator[Processes]:
    procs = Processes()
    yield procs
    procs.stop_all()


def make_node(tmp: Path, name: str, *init_args: str) -> Path:
    home = tmp / name
    iwlz("init", str(home), *init_args)
    iwlz("cert", "issue", "--network", str(tmp / "net"), str(home))
    return home


def write_json(path: Path, value: object) -> str:
    path.write_text(json.dumps(value))
    return str(path)


def test_three_nodes_as_processes_through_the_cli(tmp_path: Path, processes: Processes) -> None:
    iwlz("network", "init", str(tmp_path / "net"))
    ciz = make_node(tmp_path, "ciz", "--role", "ciz", "--name", "CIZ", "--kvk", "62253778")
    zk = make_node(tmp_path, "zk", "--role", "zorgkantoor", "--name", "Zorgkantoor Noord", "--uzovi", "5151")
    za = make_node(tmp_path, "za", "--role", "zorgaanbieder", "--name", "De Linde", "--agb", "12345678", "--region", "5151")
    ciz_url = processes.start(ciz)
    zk_url = processes.start(zk, "--bootstrap", ciz_url)
    processes.start(za, "--bootstrap", ciz_url)

    out = iwlz("record", "put", str(ciz), "WlzIndicatie", write_json(tmp_path / "ind.json", sample("wlzIndicaties", 0))).stdout
    assert f"WlzIndicatie/{IND0} version 1" in out
    iwlz("record", "put", str(zk), "Bemiddeling", write_json(tmp_path / "bem.json", sample("bemiddelingen", 0)))

    result = json.loads(iwlz("--json", "query", str(zk), "--peer", ciz_url, "QIR-0001-ZKi",
                             f"wlzIndicatieID={IND0}", "uzovi=5151").stdout)
    assert [r["data"]["wlzIndicatieID"] for r in result["records"]] == [IND0]

    refused = iwlz("query", str(za), "--peer", ciz_url, "QIR-0002-ZA", f"wlzIndicatieID={IND0}", "agb=12345678", check=False)
    assert refused.returncode == 2 and "UCIR-0002" in refused.stderr and "Traceback" not in refused.stderr

    spec = iwlz("--json", "query", str(za), "--peer", zk_url, "QBR-0001-ZA", f"bemiddelingspecificatieID={SPEC0}",
                "instelling=12345678").stdout
    evidence = write_json(tmp_path / "spec.json", json.loads(spec))
    allowed = json.loads(iwlz("--json", "query", str(za), "--peer", ciz_url, "--evidence", evidence, "QIR-0002-ZA",
                              f"wlzIndicatieID={IND0}", "agb=12345678").stdout)
    assert allowed["records"][0]["source_organisation"] == "CIZ"

    peers = json.loads(iwlz("--json", "peers", str(za)).stdout)["peers"]
    assert {p["organisation"] for p in peers} >= {"CIZ"}
    audit = iwlz("audit", str(ciz)).stdout
    assert "UCIR-0002" in audit and "106658037" not in audit
    verify = iwlz("audit", str(ciz), "--verify")
    assert "intact" in verify.stdout

    # A backup while CIZ runs, sealed; restored on "another machine" with the node's key, refused with another's.
    assert "sealed under a key derived from it" in iwlz("backup", str(ciz), str(tmp_path / "ciz.backup")).stdout
    assert b"106658037" not in (tmp_path / "ciz.backup").read_bytes()
    iwlz("restore", str(tmp_path / "ciz.backup"), str(tmp_path / "restored"), "--key", str(ciz / "node.key"))
    assert "intact" in iwlz("audit", str(tmp_path / "restored"), "--verify").stdout
    wrong = iwlz("restore", str(tmp_path / "ciz.backup"), str(tmp_path / "elsewhere"), "--key", str(zk / "node.key"),
                 check=False)
    assert wrong.returncode != 0 and "another node" in wrong.stderr and "Traceback" not in wrong.stderr
    assert not (tmp_path / "elsewhere" / "node.sqlite3").exists()


@pytest.mark.hardening
def test_acknowledged_write_survives_sigkill(tmp_path: Path, processes: Processes) -> None:
    iwlz("network", "init", str(tmp_path / "net"))
    ciz = make_node(tmp_path, "ciz", "--role", "ciz", "--name", "CIZ", "--kvk", "62253778")
    processes.start(ciz)
    for i in range(3):
        iwlz("record", "put", str(ciz), "WlzIndicatie", write_json(tmp_path / f"i{i}.json", sample("wlzIndicaties", i)))
    processes.kill(ciz, signal.SIGKILL)
    (ciz / "run.json").unlink()
    processes.start(ciz)
    listed = json.loads(iwlz("--json", "record", "list", str(ciz), "WlzIndicatie").stdout)["records"]
    assert len(listed) == 3
    # three writes, and the listing just now: three local reads of clients' records
    assert "audit chain intact: 6 entries checked" in iwlz("audit", str(ciz), "--verify").stdout


def _personal_data(value: object, key: str = "") -> set[str]:
    """Every BSN, birth date and surname in ``value`` (the demo's sample records)."""
    if isinstance(value, dict):
        return {found for k, v in value.items() for found in _personal_data(v, k)}
    if isinstance(value, list):
        return {found for v in value for found in _personal_data(v, key)}
    return {str(value)} if key in ("bsn", "geboorteDatum", "geslachtsnaam") and value else set()


def test_demo_walks_through_the_scenarios(tmp_path: Path) -> None:
    """The whole story, every node logging at debug: and no node's log names a client."""
    result = subprocess.run([sys.executable, "-m", "node", "demo", "--dir", str(tmp_path / "demo"), "--once",
                             "--log-level", "debug"], capture_output=True, text=True, timeout=180)
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "zorgkantoor-5151 -> ciz QIR-0001-ZKi: 1 record(s)" in out
    assert "zorgkantoor-5050 -> ciz QIR-0001-ZKi: REFUSED parameter uzovi must be your own uzovi (code denied, rule UCIR-0001)" in out
    assert "zorgaanbieder-12345678 -> ciz QIR-0002-ZA: 1 record(s)" in out
    assert "zorgaanbieder-87654321 -> ciz QIR-0002-ZA: REFUSED" in out and "rule UCIR-0002" in out
    assert "zorgkantoor-5050 -> zorgkantoor-5151 QBR-0007-ZK: 1 record(s)" in out
    # The care chain: care on a toewijzing, the zorgkantoor and the CAK told, the eigen bijdrage opened and closed,
    # a melding answered and closed, one from a party without a relation refused.
    assert "zorgaanbieder-87654321, which holds no toewijzing for this client: REFUSED LEVERING-TOEWIJZING" in out
    assert "got NIEUWE_LEVERING_ZORGKANTOOR" in out and "got NIEUWE_LEVERING_CAK" in out
    assert "cak EigenBijdrage v1: lopend" in out and "cak EigenBijdrage v2: beeindigd  2026-10-01 .. 2026-12-31" in out
    assert "fields the zorgkantoor sees: eigenBijdrageID, periode, status, wlzIndicatieID, zorgkantoor" in out
    assert "got BEEINDIGDE_LEVERING_CAK" in out
    assert "zorgkantoor-5151 sees its melding: afgehandeld (datum hersteld in een nieuwe versie)" in out
    assert "zorgaanbieder-87654321 sees its melding: geweigerd" in out and "rule MELDING-MELDER" in out
    assert "(tot en met 2026-12-31)" in out  # care ends then; whether it runs today depends on the date
    assert "CAK: 876 per maand vanaf 2026-10-01 tot en met 2026-12-31" in out
    # His daughter, his gemachtigde: his data on her node, her reads in his log, nothing after he withdrew it.
    assert "Gegevens van de cliënt met BSN *** bij alle bronnen (u bent zijn gemachtigde)" in out
    assert "uw gemachtigde (" in out and "regel CLIENT-GEMACHTIGDE" in out
    assert "dochter-jansen after he withdrew it: 4 of 4 sources refuse (denied (CLIENT-OWN-DATA))" in out
    assert out.count("intact") == 8 and "BROKEN" not in out
    assert not list((tmp_path / "demo").glob("*/run.json"))  # every node stopped
    samples = json.loads((Path(__file__).parents[3] / "node" / "cli" / "sample.json").read_text())
    personal = _personal_data(samples) | {"Jansen", "737459086"}  # and the demo's client's name, his daughter's BSN
    assert {"106658037", "1941-03-12", "de Vries"} <= personal
    logs = {home.parent.name: home.read_text() for home in (tmp_path / "demo").glob("*/node.log")}
    assert len(logs) == 8 and all(" INFO node.service: " in text for text in logs.values())  # each wrote its lines
    assert {(name, value) for name, text in logs.items() for value in personal if value in text} == set()


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in children.read_text().split()] if children.exists() else []


@pytest.mark.hardening
def test_sigkill_of_a_node_in_an_import_leaves_no_process_behind_and_loses_nothing(tmp_path: Path,
                                                                                  processes: Processes) -> None:
    """The node prepares an import's batches in a process of its own (node/store/preparing.py). Killed in the
    middle of an import, it leaves that process to end on its own (its pipe closes), and the same file imported
    again after a restart ends with every record once."""
    import time

    from bench.data import indicaties, write_jsonl
    from node.tasks import usable_cores

    if usable_cores() < 2:
        pytest.skip("with one core the node prepares batches itself")
    iwlz("network", "init", str(tmp_path / "net"))
    ciz = make_node(tmp_path, "ciz", "--role", "ciz", "--name", "CIZ", "--kvk", "62253778")
    processes.start(ciz, "--workers", "1")
    node_pid = processes.procs[str(ciz)].pid
    file = tmp_path / "indicaties.jsonl"
    write_jsonl(file, indicaties(30_000, seed=9))
    importing = subprocess.Popen([sys.executable, "-m", "node", "import", str(ciz), "WlzIndicatie", str(file), "--quiet"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (preparing := _children(node_pid)) and time.monotonic() < deadline and importing.poll() is None:
        time.sleep(0.02)
    assert preparing, "the node started no preparing process"
    processes.kill(ciz, signal.SIGKILL)
    out, err = importing.communicate(timeout=60)
    assert importing.returncode != 0 and "cannot reach the node" in err and "Traceback" not in err
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in preparing) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(Path(f"/proc/{pid}").exists() for pid in preparing), "the preparing process outlived its node"

    (ciz / "run.json").unlink()
    processes.start(ciz, "--workers", "1")
    summary = json.loads(iwlz("--json", "import", str(ciz), "WlzIndicatie", str(file)).stdout)
    assert summary["created"] + summary["unchanged"] == 30_000 and summary["rejected"] == 0 and summary["created"] > 0
    processes.stop_all()
    import sqlite3

    with closing(sqlite3.connect(ciz / "node.sqlite3")) as db, db:
        assert db.execute("SELECT count(*), count(DISTINCT record_id) FROM records").fetchone() == (30_000, 30_000)
    assert "chain intact" in iwlz("audit", str(ciz), "--verify").stdout


def test_a_node_that_cannot_listen_says_so_and_ends(tmp_path: Path) -> None:
    """Before, the node printed "cannot listen" and then never ended: the store it had opened kept a thread
    alive, so a supervisor saw a process that neither served nor exited (found when a test's enrolment service
    was given the port its node was to take)."""
    import socket

    iwlz("network", "init", str(tmp_path / "net"))
    home = make_node(tmp_path, "ciz", "--role", "ciz", "--name", "CIZ", "--kvk", "62253778")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            result = subprocess.run([sys.executable, "-m", "node", "run", str(home), "--no-mdns", "--port", str(port)],
                                    capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("the node neither listened nor ended")
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert not (home / "run.json").exists()
