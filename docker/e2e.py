"""The steps of docker/e2e.sh: a test network on Docker swarm, played and broken as a tester would.

Deploys docker/compose.yml, waits for health, tells the demo's story to the containers (iwlz demo --against),
then the faults: docker kill of one node of each role, the replicated zorgaanbieders scaled to 0 and back,
docker service update --force of CIZ, docker stop. After each it checks that swarm restored the node and that
no notification was lost or applied twice; a zorgkantoor that was away gets its backlog, and the time from its
return to the last delivery is measured. Then the zorgaanbieders scale to 100: time until every peer table is
full, and memory per container. Everything it created is removed at the end (docker/e2e.sh does the swarm).

Prints each step with its time, and a summary of the figures as JSON on the last line. Exits 0 only if every
step passed. Run through docker/e2e.sh; `python3 docker/e2e.py --help` for the parts it takes.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.admin.client import AdminClient  # noqa: E402
from node.cli.demo import sample_data  # noqa: E402
from node.errors import NodeError  # noqa: E402
from protocol.events import MELDING_EVENT  # noqa: E402

# The named parties of docker/compose.yml and the host ports of their admin APIs (IWLZ_ADMIN_PORT_* there).
ADMIN_PORTS = {"ciz": 18800, "cak": 18801, "zorgkantoor-5151": 18802, "zorgkantoor-5050": 18803,
               "zorgaanbieder-12345678": 18804, "zorgaanbieder-87654321": 18805, "client-jansen": 18806,
               "dochter-jansen": 18807}
CLIENTS = ("client-jansen", "dochter-jansen")  # a person's node: in no peer table, and its own holds no one
REPLICATED = "zorgaanbieders"
AGB_BASE = 98000000


class StepFailed(Exception):
    pass


def run(*args: str, timeout: float = 600, check: bool = True, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise StepFailed(f"{' '.join(args[:4])} failed: {(result.stderr or result.stdout).strip()[-800:]}")
    return result.stdout


def until(what: str, check: Callable[[], Any], timeout: float, pause: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (NodeError, StepFailed, OSError, KeyError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(pause)
    raise StepFailed(f"{what}: not reached in {timeout:.0f} s (last: {str(last)[:300]})")


@dataclass(frozen=True)
class Engine:
    """A Docker engine of the swarm: how to reach its API, and where its host-mode published ports answer."""

    host: str | None  # DOCKER_HOST; None for the default engine
    address: str = "127.0.0.1"

    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.host} if self.host else {}


class Swarm:
    """The deployed stack, seen through the docker CLI of each engine and the named nodes' admin APIs."""

    def __init__(self, stack: str, image: str, secrets: Path, replicas: int, engines: list[Engine] | None = None,
                 files: list[Path] | None = None) -> None:
        self.stack, self.image, self.secrets, self.replicas = stack, image, secrets, replicas
        self.engines = engines or [Engine(None)]
        self.files = [ROOT / "docker" / "compose.yml", *(files or [])]
        self.network = f"{stack}_iwlz"
        self.figures: dict[str, Any] = {}
        self.failed: list[str] = []
        self._admins: dict[str, tuple[str, AdminClient]] = {}
        self._engine_of: dict[str, Engine] = {}

    def on(self, container: str, *args: str, timeout: float = 600) -> str:
        """docker ARGS on the engine that runs ``container``."""
        return run("docker", *args, timeout=timeout, env=self._engine_of.get(container, self.engines[0]).env())

    # Steps ----------------------------------------------------------------------

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        print(f"\n== {title}", flush=True)
        started = time.monotonic()
        try:
            yield
        except (StepFailed, NodeError, subprocess.TimeoutExpired) as exc:
            self.failed.append(f"{title}: {exc}")
            print(f"   FAILED after {time.monotonic() - started:.1f} s: {exc}", flush=True)
            raise
        print(f"   passed in {time.monotonic() - started:.1f} s", flush=True)

    def note(self, key: str, value: Any, text: str) -> None:
        self.figures[key] = value
        print(f"   {text}", flush=True)

    # The stack ------------------------------------------------------------------------

    def deploy(self) -> None:
        env = {"IWLZ_SECRETS": str(self.secrets), "IWLZ_IMAGE": self.image, "IWLZ_REPLICAS": str(self.replicas)}
        files = [arg for f in self.files for arg in ("-c", str(f))]
        run("docker", "stack", "deploy", "--prune", "--resolve-image", "never", *files, self.stack, env=env)

    def services(self) -> dict[str, str]:
        out = run("docker", "service", "ls", "--filter", f"label=com.docker.stack.namespace={self.stack}",
                  "--format", "{{.Name}} {{.Replicas}}")
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def containers(self) -> dict[str, tuple[str, str]]:
        """Running containers of the stack on every engine: name -> (id, status)."""
        found = {}
        for engine in self.engines:
            out = run("docker", "ps", "--filter", f"label=com.docker.stack.namespace={self.stack}",
                      "--format", "{{.Names}}\t{{.ID}}\t{{.Status}}", env=engine.env())
            for name, cid, status in (line.split("\t") for line in out.splitlines() if line):
                found[name] = (cid, status)
                self._engine_of[cid] = engine
        return found

    def per_engine(self, part: str) -> list[int]:
        """How many running containers whose name holds ``part`` each engine has."""
        counts = [0] * len(self.engines)
        for name, (cid, _) in self.containers().items():
            if part in name:
                counts[self.engines.index(self._engine_of[cid])] += 1
        return counts

    def container_of(self, service: str) -> tuple[str, str] | None:
        """(id, status) of the running container of a one-replica service."""
        prefix = f"{self.stack}_{service}.1."
        found = [v for k, v in self.containers().items() if k.startswith(prefix)]
        return found[0] if len(found) == 1 else None

    def all_healthy(self, expected: int) -> bool:
        services = self.services()
        if not services or any(r.split()[0].split("/")[0] != r.split()[0].split("/")[1] for r in services.values()):
            return False
        statuses = [status for _, status in self.containers().values()]
        return len(statuses) == expected and all("(healthy)" in s for s in statuses)

    def expected_containers(self) -> int:
        return len(ADMIN_PORTS) + 1 + self.replicas  # the named parties, the enrolment service, the replicas

    def healthy_container(self, service: str, other_than: str | None = None) -> str | None:
        found = self.container_of(service)
        if found is None or found[0] == other_than or "(healthy)" not in found[1]:
            return None
        return found[0]

    # Admin APIs of the named parties ----------------------------------------------------------

    def admin(self, name: str) -> AdminClient:
        """The admin client of a named party's current container (a new container keeps the token: its volume)."""
        found = self.container_of(name)
        if found is None:
            raise StepFailed(f"{name} has no running container")
        cached = self._admins.get(name)
        if cached is None or cached[0] != found[0]:
            token = self.on(found[0], "exec", found[0], "cat", "/data/node/admin.token").strip()
            address = self._engine_of[found[0]].address
            cached = self._admins[name] = (found[0], AdminClient.at(f"http://{address}:{ADMIN_PORTS[name]}", token))
        return cached[1]

    def parties_file(self, path: Path) -> Path:
        parties = {name: {"admin": self.admin(name).base, "token": self.admin(name).token} for name in ADMIN_PORTS}
        path.write_text(json.dumps(parties))
        path.chmod(0o600)
        return path

    # Peer tables and memory, seen from inside the overlay network --------------------------------

    def addresses(self) -> dict[str, str]:
        """The overlay address of each node container (the enrolment service and clients left out)."""
        infos: list[dict[str, Any]] = []
        for engine in self.engines:  # each engine lists the containers it runs on the overlay network
            out = run("docker", "network", "inspect", self.network, "--format", "{{json .Containers}}", check=False,
                      env=engine.env())
            infos += json.loads(out or "{}").values() if out.strip().startswith("{") else []
        found = {}
        for info in infos:
            name = info.get("Name", "")
            is_task = name.startswith(self.stack + "_") and name.count(".") == 2  # stack_service.slot.task
            service = name[len(self.stack) + 1:].split(".")[0]
            if not is_task or service == "enrol" or service in CLIENTS or not info.get("IPv4Address"):
                continue
            found[name] = info["IPv4Address"].split("/")[0]
        return found

    def peer_counts(self) -> dict[str, int]:
        """iwlz_peers of every node, read from /metrics by a container on the stack's network."""
        addresses = self.addresses()
        script = (
            "import json,sys,urllib.request\n"
            "from concurrent.futures import ThreadPoolExecutor\n"
            "def peers(ip):\n"
            "    try:\n"
            "        text = urllib.request.urlopen('http://%s:8700/metrics' % ip, timeout=10).read().decode()\n"
            "    except Exception:\n"
            "        return -1\n"
            "    return next((int(float(l.split()[1])) for l in text.splitlines() if l.startswith('iwlz_peers ')), -1)\n"
            "ips = sys.argv[1:]\n"
            "with ThreadPoolExecutor(16) as pool:\n"
            "    print(json.dumps(dict(zip(ips, pool.map(peers, ips)))))\n")
        out = run("docker", "run", "--rm", "--network", self.network, "--entrypoint", "python3", self.image, "-S",
                  "-c", script, *addresses.values(), timeout=120)
        by_ip = json.loads(out.strip().splitlines()[-1])
        return {name: by_ip[ip] for name, ip in addresses.items()}

    def memory(self, part: str) -> list[float]:
        """Memory in MiB of the running containers whose name holds ``part``."""
        out = "".join(run("docker", "stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}", timeout=300,
                          env=engine.env()) for engine in self.engines)
        values = []
        for line in out.splitlines():
            name, usage = line.split("\t")
            if part in name and name.startswith(self.stack + "_"):
                amount = usage.split("/")[0].strip()
                number, unit = float(amount.rstrip("KMGiB")), amount.lstrip("0123456789.")
                values.append(number * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}.get(unit, 1 / (1024 * 1024)))
        return values

    # Notifications -------------------------------------------------------------------------

    def post_indicaties(self, count: int) -> list[str]:
        """New indicaties at CIZ for clients of zorgkantoor 5151, which CIZ must tell; their record ids."""
        template = sample_data()["wlzIndicaties"][0]
        ids = []
        for _ in range(count):
            record = copy.deepcopy(template)
            record["wlzIndicatieID"] = str(uuid.uuid4())
            record["besluitnummer"] = str(1000000000 + uuid.uuid4().int % 1000000000)
            self.admin("ciz").call("POST", "/admin/v1/records/WlzIndicatie", record)
            ids.append(f"WlzIndicatie/{record['wlzIndicatieID']}")
        return ids

    def delivered(self, record_ids: list[str], receiver: str) -> bool:
        """Whether CIZ delivered a notification of each record to ``receiver`` and it fetched the record."""
        rows = [r for r in self.admin("ciz").call("GET", "/admin/v1/outbox?limit=1000")["outbox"]
                if r["subjects"][0].get("record_id") in record_ids]
        if len(rows) < len(record_ids) or any(r["status"] != "delivered" for r in rows):
            return False
        inbox = {r["notification_id"]: r for r in self.admin(receiver).call("GET", "/admin/v1/inbox?limit=1000")["inbox"]}
        return all(inbox.get(r["notification_id"], {}).get("status") == "fetched" for r in rows)

    def check_notifications(self) -> dict[str, int]:
        """Across the named parties: every notification a source sent to a named party is in that party's inbox
        exactly once, nothing waits or died, and every audit chain is intact."""
        dids = {self.admin(name).call("GET", "/admin/v1/node")["did"]: name for name in ADMIN_PORTS}
        # Most notifications are addressed by identifier (UZOVI 5151); the peer tables say whose it is.
        by_identifier = {(kind.upper(), value): dids[peer["did"]]
                         for name in ("ciz", "zorgkantoor-5151") for peer in self.admin(name).call("GET", "/admin/v1/peers")["peers"]
                         if peer["did"] in dids for kind, value in peer["identifiers"].items()}
        received: dict[str, set[str]] = {}
        for name in ADMIN_PORTS:
            ids = [r["notification_id"] for r in self.admin(name).call("GET", "/admin/v1/inbox?limit=1000")["inbox"]]
            received[name] = set(ids)
            if len(ids) != len(received[name]):
                raise StepFailed(f"{name} holds a notification twice")
        sent = waiting = 0
        for name in ADMIN_PORTS:
            stats = self.admin(name).call("GET", "/admin/v1/outbox/stats")
            waiting += stats.get("pending", 0) + stats.get("dead", 0)
            for row in self.admin(name).call("GET", "/admin/v1/outbox?limit=1000")["outbox"]:
                receiver = dids.get(row.get("receiver_did") or "") or by_identifier.get(
                    (row["receiver_id_type"], row["receiver_id"]))
                if row["status"] != "delivered" or receiver is None or row["event_type"] == MELDING_EVENT:
                    continue  # a melding is kept by the source as a melding, not in its inbox
                sent += 1
                if row["notification_id"] not in received[receiver]:
                    raise StepFailed(f"{name}'s notification {row['notification_id']} never reached {receiver}")
            verify = self.admin(name).call("GET", "/admin/v1/audit/verify")
            if not verify["intact"]:
                raise StepFailed(f"{name}'s audit chain is broken")
        if waiting:
            raise StepFailed(f"{waiting} notification(s) still wait or died")
        return {"delivered_between_named_parties": sent}

    # Faults ------------------------------------------------------------------------------------

    def replace(self, service: str, action: Callable[[str], object], backlog: int = 0) -> dict[str, float]:
        """Break ``service``'s container with ``action``; wait for swarm to start a healthy new one. With a
        backlog, CIZ writes that many indicaties for it while it is away, and the time from the new container's
        start (and health) to the last delivery is measured."""
        old = self.container_of(service)
        if old is None:
            raise StepFailed(f"{service} has no running container")
        action(old[0])
        until(f"{service}'s old container to end", lambda: (c := self.container_of(service)) is None or c[0] != old[0],
              60, 0.2)
        records = self.post_indicaties(backlog) if backlog else []
        new = until(f"swarm to start a new {service}", lambda: (c := self.container_of(service)) and c[0] != old[0]
                    and c[0], 120, 0.2)
        started = _parse_time(self.on(new, "inspect", "-f", "{{.State.StartedAt}}", new).strip())
        result: dict[str, float] = {}
        if records:
            until(f"the backlog of {backlog} at {service}", lambda: self.delivered(records, service), 120, 0.25)
            result["backlog_after_start_s"] = round(time.time() - started, 1)
        until(f"{service} healthy again", lambda: self.healthy_container(service, old[0]), 120, 0.2)
        healthy = self._health_at(new)
        result["healthy_after_start_s"] = round(healthy - started, 1)
        if records:
            result["backlog_after_healthy_s"] = round(max(0.0, result["backlog_after_start_s"] - result["healthy_after_start_s"]), 1)
        return result

    def _health_at(self, container: str) -> float:
        """When the container's health check first passed."""
        out = self.on(container, "inspect", "-f", "{{json .State.Health.Log}}", container)
        passed = [entry for entry in json.loads(out) if entry.get("ExitCode") == 0]
        return _parse_time(passed[0]["End"]) if passed else time.time()


def _parse_time(text: str) -> float:
    """Seconds since the epoch of Docker's RFC 3339 times in UTC (2026-12-05T06:33:14.123456789Z)."""
    main, _, fraction = text.split("+")[0].rstrip("Z").partition(".")
    whole = datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    digits = "".join(ch for ch in fraction if ch.isdigit())[:6]
    return whole + (int(digits) / 10 ** len(digits) if digits else 0.0)


# The story -----------------------------------------------------------------------------------------


def play(swarm: Swarm, scale_to: int, iwlz: list[str]) -> None:
    with swarm.step(f"deploy the stack {swarm.stack} ({swarm.image})"):
        started = time.monotonic()
        swarm.deploy()
        until("every service healthy", lambda: swarm.all_healthy(swarm.expected_containers()), 300, 1)
        swarm.note("time_to_healthy_s", round(time.monotonic() - started, 1),
                   f"{swarm.expected_containers()} containers healthy {time.monotonic() - started:.1f} s after deploy")
        nodes = swarm.expected_containers() - 1 - len(CLIENTS)  # everyone but the enrolment service and the clients
        until("full peer tables", lambda: _full(swarm, nodes), 180, 2)
        swarm.note("time_to_full_peer_tables_s", round(time.monotonic() - started, 1),
                   f"every peer table full ({nodes - 1} peers each) {time.monotonic() - started:.1f} s after deploy")

    with swarm.step("the demo's story, told to the containers (iwlz demo --against)"):
        _story(swarm, iwlz)

    faults = [
        ("docker kill of zorgkantoor-5151, while CIZ writes 5 indicaties for it", "zorgkantoor-5151",
         lambda c: swarm.on(c, "kill", c), 5),
        ("docker kill of CIZ", "ciz", lambda c: swarm.on(c, "kill", c), 0),
        ("docker kill of CAK", "cak", lambda c: swarm.on(c, "kill", c), 0),
        ("docker kill of zorgaanbieder-12345678", "zorgaanbieder-12345678", lambda c: swarm.on(c, "kill", c), 0),
        ("docker kill of client-jansen", "client-jansen", lambda c: swarm.on(c, "kill", c), 0),
        ("docker service update --force of CIZ", "ciz",
         lambda c: run("docker", "service", "update", "--detach", "--force", f"{swarm.stack}_ciz"), 0),
        ("docker stop of zorgkantoor-5151 (a clean stop), while CIZ writes 5 indicaties for it", "zorgkantoor-5151",
         lambda c: swarm.on(c, "stop", c), 5),
    ]
    for title, service, action, backlog in faults:
        with swarm.step(title):
            result = swarm.replace(service, action, backlog)
            key = title.split(",")[0].replace(" ", "_").replace("-", "_")
            swarm.note(key, result, ", ".join(f"{k} {v}" for k, v in result.items()))
            swarm.note(key + "_check", swarm.check_notifications(), "nothing lost or applied twice; chains intact")

    with swarm.step("docker kill of a replicated zorgaanbieder"):
        name = next(n for n in swarm.containers() if n.startswith(f"{swarm.stack}_{REPLICATED}.1."))
        old = swarm.containers()[name][0]
        swarm.on(old, "kill", old)
        until("swarm to restore the replica", lambda: swarm.all_healthy(swarm.expected_containers())
              and old not in {c for c, _ in swarm.containers().values()}, 120, 0.5)
        _one_member_per_slot(swarm, swarm.replicas)

    with swarm.step(f"scale {REPLICATED} to 0 and back to {swarm.replicas}"):
        run("docker", "service", "scale", "--detach", f"{swarm.stack}_{REPLICATED}=0")
        until("no replica left", lambda: not any(f"_{REPLICATED}." in n for n in swarm.containers()), 120, 0.5)
        run("docker", "service", "scale", "--detach", f"{swarm.stack}_{REPLICATED}={swarm.replicas}")
        until("the replicas back and healthy", lambda: swarm.all_healthy(swarm.expected_containers()), 180, 0.5)
        _one_member_per_slot(swarm, swarm.replicas)
        swarm.note("replicas_check", swarm.check_notifications(), "nothing lost or applied twice; chains intact")

    with swarm.step(f"scale {REPLICATED} to {scale_to}"):
        started = time.monotonic()
        swarm.replicas = scale_to
        run("docker", "service", "scale", "--detach", f"{swarm.stack}_{REPLICATED}={scale_to}")
        until(f"{scale_to} replicas healthy", lambda: swarm.all_healthy(swarm.expected_containers()), 900, 2)
        swarm.note("scale_time_to_healthy_s", round(time.monotonic() - started, 1),
                   f"{scale_to} replicas healthy {time.monotonic() - started:.1f} s after the scale")
        nodes = swarm.expected_containers() - 1 - len(CLIENTS)
        until("every peer table full", lambda: _full(swarm, nodes), 900, 3)
        swarm.note("scale_time_to_full_peer_tables_s", round(time.monotonic() - started, 1),
                   f"every one of {nodes} peer tables full ({nodes - 1} peers) {time.monotonic() - started:.1f} s "
                   "after the scale")
        memory = swarm.memory(f"_{REPLICATED}.")
        swarm.note("replica_memory_mib", {"containers": len(memory), "mean": round(sum(memory) / len(memory), 1),
                                          "max": round(max(memory), 1)},
                   f"memory per replica: mean {sum(memory) / len(memory):.1f} MiB, max {max(memory):.1f} MiB "
                   f"({len(memory)} containers)")
        _one_member_per_slot(swarm, scale_to)


def play_two_engines(swarm: Swarm, iwlz: list[str]) -> None:
    """The stack across two engines (docker/two-engines.yml): nodes on both converge and exchange notifications."""
    with swarm.step("deploy the stack across two engines"):
        started = time.monotonic()
        swarm.deploy()
        until("every service healthy", lambda: swarm.all_healthy(swarm.expected_containers()), 300, 1)
        spread = swarm.per_engine("_")
        if len(spread) < 2 or min(spread) == 0:
            raise StepFailed(f"containers per engine: {spread}")
        swarm.note("two_engines_containers", spread, f"containers per engine: {spread}, healthy "
                   f"{time.monotonic() - started:.1f} s after deploy")
        nodes = swarm.expected_containers() - 1 - len(CLIENTS)
        until("full peer tables on both engines", lambda: _full(swarm, nodes), 180, 2)
        swarm.note("two_engines_full_peer_tables_s", round(time.monotonic() - started, 1),
                   f"every peer table full ({nodes - 1} peers each, on both engines) "
                   f"{time.monotonic() - started:.1f} s after deploy")
    with swarm.step("the demo's story across the engines (CIZ on one, zorgkantoor 5151 on the other)"):
        _story(swarm, iwlz)
    with swarm.step("docker kill of zorgkantoor-5151 on the second engine, while CIZ writes 5 indicaties for it"):
        result = swarm.replace("zorgkantoor-5151", lambda c: swarm.on(c, "kill", c), 5)
        swarm.note("two_engines_kill_zk5151", result, ", ".join(f"{k} {v}" for k, v in result.items()))
        swarm.note("two_engines_check", swarm.check_notifications(), "nothing lost or applied twice; chains intact")


def _story(swarm: Swarm, iwlz: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        parties = swarm.parties_file(Path(tmp) / "parties.json")
        story = subprocess.run([*iwlz, "demo", "--against", str(parties)], capture_output=True, text=True, timeout=600)
    print("\n".join("   | " + line for line in story.stdout.splitlines()[-12:]))
    if story.returncode != 0:
        raise StepFailed(f"the story did not go as expected (exit {story.returncode}): {story.stderr[-500:]}")
    swarm.note("story", swarm.check_notifications(), "every notification delivered once, every chain intact")


def _full(swarm: Swarm, nodes: int) -> bool:
    """Whether each of ``nodes`` nodes lists every other; otherwise StepFailed with who lacks how many."""
    counts = swarm.peer_counts()
    short = {name.split(".")[0] + "." + name.split(".")[1]: n for name, n in counts.items() if n != nodes - 1}
    if len(counts) == nodes and not short:
        return True
    raise StepFailed(f"{len(counts)} of {nodes} nodes seen; peers short of {nodes - 1}: {dict(list(short.items())[:8])}")


def _one_member_per_slot(swarm: Swarm, replicas: int) -> None:
    """Every named node lists each replica's AGB code once: a replaced replica's predecessor was revoked, and the
    revocation reached every peer table (pushed to CIZ, handed on, gossiped)."""
    wanted = [f"{AGB_BASE + slot:08d}" for slot in range(1, replicas + 1)]

    def check() -> bool:
        for name in ADMIN_PORTS:
            if name in CLIENTS:
                continue
            peers = swarm.admin(name).call("GET", "/admin/v1/peers")["peers"]
            codes = sorted(p["identifiers"].get("agb") for p in peers if p["organisation"].startswith("Zorgaanbieder "))
            if codes != wanted:
                raise StepFailed(f"{name} lists replicas {codes[:6]}{'...' if len(codes) > 6 else ''}")
        return True
    until("one peer table entry per replica in every named node", check, 120, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--secrets", required=True, type=Path, help="what docker/network.sh made")
    parser.add_argument("--stack", default="iwlz-e2e")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--scale-to", type=int, default=100)
    parser.add_argument("--iwlz", default=f"{sys.executable} -m node", help="how to run the iwlz command")
    parser.add_argument("--worker", metavar="DOCKER_HOST,ADDRESS",
                        help="a second engine in the swarm (docker/second-engine.sh): play the two-engine test")
    args = parser.parse_args()
    engines = [Engine(None)]
    if args.worker:
        host, address = args.worker.split(",")
        engines.append(Engine(host, address))
    swarm = Swarm(args.stack, args.image, args.secrets, args.replicas, engines,
                  [ROOT / "docker" / "two-engines.yml"] if args.worker else [])
    try:
        if args.worker:
            play_two_engines(swarm, args.iwlz.split())
        else:
            play(swarm, args.scale_to, args.iwlz.split())
    except (StepFailed, NodeError, subprocess.TimeoutExpired):
        pass
    print("\n" + ("every step passed" if not swarm.failed else "FAILED: " + "; ".join(swarm.failed)))
    print(json.dumps({"passed": not swarm.failed, **swarm.figures}))
    return 0 if not swarm.failed else 1


if __name__ == "__main__":
    sys.exit(main())
