"""mDNS for real: nodes in separate network namespaces joined by a bridge find each other by
multicast alone (no bootstrap) and then exchange a signed query.

Needs root and iproute2 (CI runs as root); the namespaces, veths and bridge are made by the
test and removed afterwards, and all traffic stays inside them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns import available, bridged_pair
from tests.node.kit import reap

pytestmark = pytest.mark.netns

if not available():
    pytest.skip("needs root and iproute2 to create network namespaces", allow_module_level=True)

SUBNET = "10.254.77"


@pytest.fixture
def namespaces() -> Iterator[dict[str, str]]:
    with bridged_pair("iwlz", SUBNET, multicast=True) as names:
        yield names


def iwlz(ns: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    prefix = ["ip", "netns", "exec", ns] if ns else []
    return subprocess.run([*prefix, sys.executable, "-m", "node", *args], capture_output=True, text=True, timeout=60)


def test_nodes_in_two_namespaces_find_each_other_by_mdns(tmp_path: Path, namespaces: dict[str, str]) -> None:
    assert iwlz(None, "network", "init", str(tmp_path / "net")).returncode == 0
    homes = {"a": tmp_path / "cak", "b": tmp_path / "aanbieder"}
    iwlz(None, "init", str(homes["a"]), "--role", "cak", "--name", "CAK", "--kvk", "27364237")
    iwlz(None, "init", str(homes["b"]), "--role", "zorgaanbieder", "--name", "De Linde", "--agb", "12345678", "--region", "5151")
    for home in homes.values():
        assert iwlz(None, "cert", "issue", "--network", str(tmp_path / "net"), str(home)).returncode == 0
    procs = []
    try:
        for key in ("a", "b"):
            ns, ip = namespaces[key], namespaces[f"{key}_ip"]
            log = open(homes[key] / "node.log", "w")
            proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "node", "run", str(homes[key]),
                                     "--host", ip, "--mdns-interface", ip, "--gossip-interval", "0"],
                                    stdout=subprocess.PIPE, stderr=log, text=True)
            log.close()
            procs.append(proc)
            line = proc.stdout.readline() if proc.stdout else ""
            assert line.startswith("ready "), (homes[key] / "node.log").read_text()
        deadline = time.monotonic() + 30
        peers: list[dict] = []
        while time.monotonic() < deadline:
            result = iwlz(namespaces["a"], "--json", "peers", str(homes["a"]))
            peers = json.loads(result.stdout)["peers"] if result.returncode == 0 else []
            if peers:
                break
            time.sleep(0.3)
        assert [(p["organisation"], p["source"]) for p in peers] == [("De Linde", "mdns")]
        assert peers[0]["endpoints"] == [f"http://{namespaces['b_ip']}:{peers[0]['endpoints'][0].rsplit(':', 1)[1]}"]
        offer = {"zorgaanbodID": "5d1e7a3c-2b4f-4c6e-9a8b-1c3e5f7a9b2d", "instelling": "12345678", "regio": "5151",
                 "zzpCodes": ["5VV"], "leveringsvormen": ["1"], "vrijeCapaciteit": 2, "peildatum": "2026-11-01"}
        (tmp_path / "offer.json").write_text(json.dumps(offer))
        assert iwlz(namespaces["b"], "record", "put", str(homes["b"]), "Zorgaanbod", str(tmp_path / "offer.json")).returncode == 0
        result = iwlz(namespaces["a"], "--json", "query", str(homes["a"]), "--peer", "agb:12345678", "ZORGAANBOD")
        assert result.returncode == 0, result.stderr
        records = json.loads(result.stdout)["records"]
        assert [(r["kind"], r["data"]["vrijeCapaciteit"], r["source_organisation"]) for r in records] == [("Zorgaanbod", 2, "De Linde")]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            reap(proc, timeout=15)
