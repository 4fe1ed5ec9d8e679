"""Every core (iwlz run --workers N): worker processes answer queries on the node's port beside the process that
owns writes. What must hold whatever process is killed: every answered query is in the audit chain, the chain
verifies, a message id is accepted once across all processes, and a revocation reaches every process at once."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import ssl
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import trustme

from node.home import NetworkDir, NodeHome
from node.worker import SERVED_BY
from protocol import Answers as QueryAnswers
from protocol import (
    MAX_BATCH, MEDIA_TYPE, AccessLogRequest, Endpoint, Error, Outgoing, Queries, Query, QueryResult, RemoteProtocolError,
)
from protocol.records import verify_record
from tests.hardening.kit import NodeProcess
from tests.node.server.test_tls import tls_files

pytestmark = pytest.mark.asyncio
SAMPLE = json.loads((Path(__file__).resolve().parents[2] / "node" / "cli" / "sample.json").read_text())
INDICATIE = SAMPLE["wlzIndicaties"][0]
QUERY = Query(template="QIR-0001-ZKi", params={"wlzIndicatieID": INDICATIE["wlzIndicatieID"], "uzovi": "5151"},
              evidence=(), history=False)


BOTH = {"worker 1", "worker 2"}  # with workers, the owner answers no peer itself


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc: no procps on a bare machine)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def settings_of(worker: int) -> Path:
    """The settings file the owner wrote for a worker (its argument), in the owner's private directory."""
    return Path(Path(f"/proc/{worker}/cmdline").read_bytes().split(b"\0")[3].decode())


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class Answers:
    ok: set[str] = field(default_factory=set)  # trace ids of queries answered with the record
    codes: dict[str, int] = field(default_factory=dict)
    served_by: dict[str, int] = field(default_factory=dict)
    unreachable: int = 0


class Requester:
    """The zorgkantoor asking the CIZ node, each request on a fresh connection so that the kernel spreads them.
    Its certificate goes whole with every message: each process learns a sender's certificate for itself, and a
    PeerClient sends it again when told ``unknown-certificate``, which this requester does not."""

    def __init__(self, home: NodeHome, did: str, url: str) -> None:
        self.endpoint = Endpoint(home.identity(), home.certificate(), home.trust_store())
        self.did, self.url = did, url + "/iwlz/v1/messages"

    async def send(self, http: aiohttp.ClientSession, answers: Answers, outgoing: Outgoing | None = None) -> None:
        outgoing = outgoing or self.endpoint.send(QUERY, to=self.did, now=int(time.time()), lifetime=120, cert_by_hash=False)
        body = outgoing.data
        try:
            async with http.post(self.url, data=body, headers={"Content-Type": MEDIA_TYPE}) as response:
                reply, by = await response.read(), response.headers.get(SERVED_BY, "owner")
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            answers.unreachable += 1
            return
        answers.served_by[by] = answers.served_by.get(by, 0) + 1
        try:
            message = self.endpoint.receive_reply(reply, outgoing, now=int(time.time())).message
        except RemoteProtocolError:
            answers.codes["unreadable"] = answers.codes.get("unreadable", 0) + 1
            return
        if isinstance(message, QueryResult) and len(message.records) == 1:
            answers.ok.add(outgoing.envelope.trace_id or "")
        code = message.code if isinstance(message, Error) else "ok"
        answers.codes[code] = answers.codes.get(code, 0) + 1

    async def load(self, answers: Answers, *, seconds: float, tasks: int = 12, limit: int = 3000) -> None:
        deadline = time.monotonic() + seconds
        sent = 0

        async def one_task(http: aiohttp.ClientSession) -> None:
            nonlocal sent
            while time.monotonic() < deadline and sent < limit:
                sent += 1
                await self.send(http, answers)

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True),
                                         timeout=aiohttp.ClientTimeout(total=10)) as http:
            await asyncio.gather(*(one_task(http) for _ in range(tasks)))


def start_ciz(tmp_path: Path, *extra: str, scheme: str = "http") -> tuple[NodeProcess, Requester, NetworkDir]:
    net = NetworkDir.create(tmp_path / "net", "test")
    node = NodeProcess(tmp_path, "ciz", net)
    zk = NodeHome.create(tmp_path / "zk5151", role="zorgkantoor", name="Zorgkantoor Noord", identifiers={"uzovi": "5151"},
                         region=None)
    net.issue(zk, now=int(time.time()), days=1)
    node.start("--workers", "2", *extra)  # two workers answer peers; the owner commits for them
    subprocess.run([sys.executable, "-m", "node", "record", "put", str(node.home.path), "WlzIndicatie", "-"],
                   input=json.dumps(INDICATIE), text=True, check=True, capture_output=True)
    did = json.loads((node.home.path / "run.json").read_text())["did"]
    return node, Requester(zk, did, node.url.replace("http://", f"{scheme}://")), net


@pytest.fixture
def ciz(tmp_path: Path) -> tuple[NodeProcess, Requester, NetworkDir]:
    started = start_ciz(tmp_path)
    yield started
    started[0].stop()


def audited_queries(node: NodeProcess) -> list[str]:
    with closing(sqlite3.connect(node.home.database_path)) as db, db:
        return [r[0] for r in db.execute("SELECT trace_id FROM audit WHERE event = 'query QIR-0001-ZKi' "
                                         "AND result = 'allowed'")]


def chain_verifies(node: NodeProcess) -> str:
    out = subprocess.run([sys.executable, "-m", "node", "audit", str(node.home.path), "--verify"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def wait_for(condition, seconds: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


async def test_both_processes_answer_and_every_answer_is_in_the_one_chain(ciz) -> None:  # type: ignore[no-untyped-def]
    node, requester, _ = ciz
    assert len(children(node.proc.pid)) == 2
    answers = Answers()
    await requester.load(answers, seconds=30, limit=400)
    assert answers.codes == {"ok": 400} and answers.unreachable == 0
    assert set(answers.served_by) == BOTH, answers.served_by  # the kernel spread the connections
    async with aiohttp.ClientSession() as http:  # paths the worker passes on are answered as the owner answers them
        for _ in range(10):
            async with http.get(node.url + "/health") as response:
                assert response.status == 200 and (await response.json())["role"] == "ciz"
        # /metrics counts every answer the node gave, though the owner gave none itself: workers hand their counts over.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            async with http.get(node.url + "/metrics") as response:
                text = await response.text()
            counted = re.search(r'iwlz_requests_total\{outcome="ok",type="query"\} (\d+)', text)
            if counted and int(counted.group(1)) >= 400:
                break
            await asyncio.sleep(0.3)
        assert counted and int(counted.group(1)) == 400, text[-2000:]
    owner, workers = node.proc, children(node.proc.pid)
    node.stop()  # SIGTERM: the owner stops its workers and itself, with nothing held open (a kill after 10 s is -9)
    assert owner.returncode == 0 and not any(alive(worker) for worker in workers)
    assert sorted(audited_queries(node)) == sorted(answers.ok)
    assert "chain intact" in chain_verifies(node)


async def test_a_message_is_accepted_once_whichever_process_receives_it(ciz) -> None:  # type: ignore[no-untyped-def]
    node, requester, _ = ciz
    answers = Answers()
    once = requester.endpoint.send(QUERY, to=requester.did, now=int(time.time()), lifetime=120, cert_by_hash=False)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        for _ in range(24):  # on fresh connections: both processes receive it
            await requester.send(http, answers, once)
    assert answers.codes == {"ok": 1, "replay": 23}, answers.codes
    assert set(answers.served_by) == BOTH, answers.served_by
    node.stop()
    assert len(audited_queries(node)) == 1


@pytest.mark.parametrize("victim", ["worker", "owner"])
async def test_a_killed_process_loses_no_answered_query_and_never_breaks_the_chain(ciz, victim: str) -> None:  # type: ignore[no-untyped-def]
    node, requester, _ = ciz
    owner = node.proc.pid
    worker, other = children(owner)
    private = settings_of(worker).parent
    answers = Answers()

    async def kill_soon() -> None:
        await asyncio.sleep(1.0)
        os.kill(worker if victim == "worker" else owner, signal.SIGKILL)

    await asyncio.gather(requester.load(answers, seconds=3.0, limit=5000), kill_soon())
    assert len(answers.ok) > 20
    if victim == "worker":
        wait_for(lambda: len(children(owner)) == 2 and worker not in children(owner))  # the owner started another
        after = Answers()
        await requester.load(after, seconds=30, limit=40)
        assert after.codes == {"ok": 40}, after.codes
        answers.ok |= after.ok
        node.stop()
    else:
        wait_for(lambda: not alive(worker) and not alive(other), 5.0)  # the kernel ends workers whose owner died
        node.stop()
        assert private.exists()  # a killed owner cannot clear its private directory ...
        node.start("--workers", "2")  # the port is free again at once
        assert not private.exists()  # ... the next owner of this user does
        node.stop()
    audited = audited_queries(node)
    assert answers.ok <= set(audited), f"{len(answers.ok - set(audited))} answered queries are not in the audit log"
    assert len(audited) == len(set(audited))
    assert "chain intact" in chain_verifies(node)


async def test_a_revocation_reaches_every_process_at_once(ciz) -> None:  # type: ignore[no-untyped-def]
    node, requester, net = ciz
    zk = NodeHome(node.home.path.parent / "zk5151")
    member = zk.trust_store().verify_certificate(zk.certificate(), int(time.time()))
    _, data = net.revoke([member.cert_id_hex], now=int(time.time()))
    async with aiohttp.ClientSession() as http:
        async with http.post(node.url + "/iwlz/v1/revocations", data=data) as response:
            assert (await response.json())["adopted"] is True
    await asyncio.sleep(0.2)  # the owner tells its workers; they read the list from the home
    answers = Answers()
    await requester.load(answers, seconds=30, limit=40)
    assert set(answers.served_by) == BOTH, answers.served_by
    assert not answers.ok and set(answers.codes) == {"revoked"}, answers.codes


async def test_messages_passed_on_to_the_owner_never_count_against_a_later_query(ciz) -> None:  # type: ignore[no-untyped-def]
    """A worker passes an access-log request on (the owner answers it, and records its id); the id must not ride
    along with the next query the worker hands over, or the owner would refuse that query as a replay."""
    node, requester, _ = ciz
    answers, passed_on = Answers(), Answers()
    ask_log = AccessLogRequest(bsn=INDICATIE["bsn"], since=0)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        for _ in range(30):
            await requester.send(http, passed_on,
                                 requester.endpoint.send(ask_log, to=requester.did, now=int(time.time()), lifetime=120, cert_by_hash=False))
            await requester.send(http, answers)
    assert set(passed_on.served_by) == BOTH and set(passed_on.codes) == {"denied"}, passed_on.codes
    assert answers.codes == {"ok": 30}, answers.codes


async def test_a_change_at_the_source_is_what_every_process_answers_next(ciz) -> None:  # type: ignore[no-untyped-def]
    """Workers keep versions in memory too; a new version committed by the owner must be what the very next
    query returns, whichever process answers it (a peer told of a change fetches it at once)."""
    node, requester, _ = ciz
    trust = requester.endpoint.trust

    async def versions(count: int) -> tuple[set[int], set[str]]:
        seen, by = set(), set()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            for _ in range(count):
                outgoing = requester.endpoint.send(QUERY, to=requester.did, now=int(time.time()), lifetime=120,
                                                   cert_by_hash=False)
                async with http.post(requester.url, data=outgoing.data, headers={"Content-Type": MEDIA_TYPE}) as response:
                    reply = requester.endpoint.receive_reply(await response.read(), outgoing, now=int(time.time()))
                    by.add(response.headers.get(SERVED_BY, "owner"))
                assert isinstance(reply.message, QueryResult)
                seen.add(verify_record(reply.message.records[0], trust, int(time.time()))[0].version)
        return seen, by

    assert await versions(20) == ({1}, BOTH)  # both processes now keep version 1
    for version in (2, 3):
        changed = {**INDICATIE, "besluitnummer": f"20000000{version}"}
        subprocess.run([sys.executable, "-m", "node", "record", "put", str(node.home.path), "WlzIndicatie", "-"],
                       input=json.dumps(changed), text=True, check=True, capture_output=True)
        assert await versions(20) == ({version}, BOTH)


async def test_every_worker_speaks_https_with_the_node_certificate(tmp_path: Path) -> None:
    files = tls_files(tmp_path / "tls", trustme.CA(), "node")
    node, requester, _ = start_ciz(tmp_path, "--tls-cert", files["tls_cert"], "--tls-key", files["tls_key"],
                                   scheme="https")
    try:
        answers = Answers()
        trusting = ssl.create_default_context(cafile=files["tls_ca"])
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, ssl=trusting)) as http:
            for _ in range(20):
                await requester.send(http, answers)
        assert answers.codes == {"ok": 20} and set(answers.served_by) == BOTH, (answers.codes, answers.served_by)
    finally:
        node.stop()


async def test_no_other_user_can_reach_the_owner_socket(ciz) -> None:  # type: ignore[no-untyped-def]
    """Whoever can connect to the owner's socket can hand it writes: only the node's own user may. Another local
    user (nobody) is refused by the file system before the owner reads a byte."""
    node, _, _ = ciz
    settings = settings_of(children(node.proc.pid)[0])
    private = settings.parent
    socket_path = json.loads(settings.read_text())["socket"]
    assert private.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o077 == 0 for p in private.iterdir())  # socket, change count, settings
    python = "/usr/bin/python3"  # one that another user may run (this venv may sit in root's home)
    if os.geteuid() != 0 or not os.access(python, os.X_OK):
        pytest.skip("needs root and /usr/bin/python3 to act as another user")
    attempt = subprocess.run(
        [python, "-c", "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])", socket_path],
        capture_output=True, text=True, user=65534, group=65534)
    assert attempt.returncode != 0 and "PermissionError" in attempt.stderr, attempt.stderr


async def test_a_batch_of_queries_is_answered_by_a_worker_and_its_writes_reach_the_chain(ciz) -> None:  # type: ignore[no-untyped-def]
    """A batch's 64 audit entries make a hand-over of several chunks: the owner reads it whole (it once read one
    chunk, refused the rest, and the worker tried again forever)."""
    node, requester, _ = ciz
    batch = Queries(queries=(QUERY,) * MAX_BATCH)
    traces, served = [], set()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True),
                                     timeout=aiohttp.ClientTimeout(total=20)) as http:
        # On fresh connections, until both workers answered some (the kernel spreads connections by their address
        # hash: six alone went to one worker about once in thirty runs), and at least six.
        for _ in range(40):
            if served == BOTH and len(traces) >= 6:
                break
            outgoing = requester.endpoint.send(batch, to=requester.did, now=int(time.time()), lifetime=120,
                                               cert_by_hash=False)
            async with http.post(requester.url, data=outgoing.data, headers={"Content-Type": MEDIA_TYPE}) as response:
                reply, by = await response.read(), response.headers.get(SERVED_BY, "owner")
            answers = requester.endpoint.receive_reply(reply, outgoing, now=int(time.time())).message
            assert isinstance(answers, QueryAnswers) and len(answers.answers) == MAX_BATCH
            assert all(a.error is None and len(a.records) == 1 for a in answers.answers)
            traces.append(outgoing.envelope.trace_id)
            served.add(by)
    assert served == BOTH, served
    node.stop()
    audited = audited_queries(node)
    assert all(audited.count(trace) == MAX_BATCH for trace in traces) and len(audited) == len(traces) * MAX_BATCH
    assert "chain intact" in chain_verifies(node)
