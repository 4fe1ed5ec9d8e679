"""The local admin API, the node's HTTP endpoints, and the audit chain under tampering."""

from __future__ import annotations

import re
from contextlib import closing
from pathlib import Path
import sqlite3

from typing import Any

import aiohttp
import pytest

from node.errors import ConfigError
from node.store.offline import read_audit
from node.service import Node
from tests.node.kit import Network, sample

pytestmark = pytest.mark.asyncio
IND0 = "31835d1d-3933-4ffe-9f57-8985f41fae4a"


def auth(node: Node, token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token if token is not None else node.home.admin_token()}"}


async def test_admin_api_needs_the_token_and_changes_nothing_without_it(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    async with aiohttp.ClientSession() as http:
        for headers in ({}, auth(ciz, "wrong"), {"Authorization": "Basic xyz"}):
            async with http.post(f"{ciz.admin_url}/admin/v1/records/WlzIndicatie", json=sample("wlzIndicaties", 0), headers=headers) as r:
                assert r.status == 401
                assert (await r.json())["error"] == "unauthorized"
            async with http.get(f"{ciz.admin_url}/admin/v1/audit", headers=headers) as r:
                assert r.status == 401
    assert await ciz.registers.count() == 0
    assert await ciz.audit.entries() == []


async def test_admin_api_is_bound_to_localhost_by_default(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    assert ciz.admin_url.startswith("http://127.0.0.1:")
    assert ciz.admin_url != ciz.url


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "admin.example.org"])
async def test_the_admin_listener_speaks_plain_http_on_loopback_only_unless_told_so(network: Network, host: str) -> None:
    """The admin API carries bearer tokens, records and a client's data, in plain HTTP. An admin_host beyond the
    machine put them on the network in the clear (the Docker image did so for everyone who ran it); a node now
    refuses to start with one, unless config.json says admin_plain_http (a test network's containers)."""
    home = network.home("ciz")
    config = home.config()
    config.admin_host = host
    home.save_config(config)
    with pytest.raises(ConfigError, match="admin_host"):
        home.config()
    config.admin_plain_http = True
    home.save_config(config)
    assert home.config().admin_host == host
    assert home.config().admin_on_network
    for loopback in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        config.admin_host, config.admin_plain_http = loopback, False
        home.save_config(config)
        assert home.config().admin_host == loopback and not home.config().admin_on_network


async def test_admin_plain_http_beyond_the_machine_is_said_at_start(network: Network, caplog: Any) -> None:
    (ciz,) = await network.start("ciz", admin_host="0.0.0.0", admin_plain_http=True)
    assert any("plain HTTP" in r.getMessage() and "0.0.0.0" in r.getMessage() for r in caplog.records
               if r.levelname == "WARNING")
    assert ciz.admin_url.startswith("http://0.0.0.0:")
    port = ciz.admin_url.rsplit(":", 1)[1]
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/admin/v1/node", headers=auth(ciz)) as r:
        assert r.status == 200


async def test_admin_record_life_cycle(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    base = f"{ciz.admin_url}/admin/v1/records/WlzIndicatie"
    record = sample("wlzIndicaties", 0)
    async with aiohttp.ClientSession(headers=auth(ciz)) as http:
        async with http.post(base, json=record) as r:
            assert r.status == 201 and (await r.json())["version"] == 1
        async with http.post(base, json=record) as r:
            assert (await r.json()) == {"kind": "WlzIndicatie", "id": IND0, "version": 1, "changed": False}
        record["meerzorg"] = True
        async with http.post(base, json=record) as r:
            assert (await r.json())["version"] == 2
        async with http.get(f"{base}/{IND0}?history=1") as r:
            versions = (await r.json())["versions"]
            assert [v["version"] for v in versions] == [1, 2] and versions[1]["data"]["meerzorg"] is True
        async with http.delete(f"{base}/{IND0}") as r:
            assert (await r.json())["version"] == 3
        async with http.get(base) as r:
            assert (await r.json())["records"] == []
        bad = dict(record, bsn="123456789")
        async with http.post(base, json=bad) as r:
            body = await r.json()
            assert r.status == 400 and "bsn" in body["reason"] and "123456789" not in body["reason"]
        async with http.post(f"{ciz.admin_url}/admin/v1/records/Bemiddeling", json=sample("bemiddelingen", 0)) as r:
            assert r.status == 400 and "does not hold the bemiddeling register" in (await r.json())["reason"]
        async with http.get(f"{ciz.admin_url}/admin/v1/audit") as r:
            events = [(e["event"], e["action"]) for e in (await r.json())["entries"]]
    # Writes, and the local read of the client's record (the listing after the delete showed nothing).
    assert events == [("record.create", "C"), ("record.update", "U"), ("admin.read", "R"), ("record.delete", "D")]


async def test_retention_purge_removes_all_versions_after_the_period(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    ended = sample("wlzIndicaties", 0)
    ended["einddatum"] = "2020-01-31"
    await ciz.registers.put("WlzIndicatie", ended, actor=ciz.actor, now=ciz.now())
    await ciz.registers.put("WlzIndicatie", sample("wlzIndicaties", 1), actor=ciz.actor, now=ciz.now())
    async with aiohttp.ClientSession(headers=auth(ciz)) as http:
        async with http.post(f"{ciz.admin_url}/admin/v1/purge", json={"today": "2025-01-31"}) as r:
            assert (await r.json())["purged"] == 0  # end + 5 years is 2025-01-31: not yet past
        async with http.post(f"{ciz.admin_url}/admin/v1/purge", json={"today": "2025-02-01"}) as r:
            assert (await r.json())["purged"] == 1
    assert await ciz.registers.history("WlzIndicatie", IND0) == []
    assert await ciz.registers.count() == 1
    assert (await ciz.audit.verify())[0]


async def test_health_metrics_and_policy_endpoints(network: Network) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    await ciz.registers.put("WlzIndicatie", sample("wlzIndicaties", 0), actor=ciz.actor, now=ciz.now())
    await zk.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND0, "uzovi": "5151"}, [])
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{ciz.url}/health") as r:
            assert r.status == 200 and (await r.json())["status"] == "ready"
        async with http.get(f"{ciz.url}/metrics") as r:
            text = await r.text()
        async with http.get(f"{ciz.url}/iwlz/v1/policy") as r:
            policy = await r.json()
    # the test's query, and the one zorgkantoor 5151 makes itself after CIZ notified it
    assert re.search(r'iwlz_requests_total\{outcome="ok",type="query"\} [12]\.0', text)
    assert re.search(r'iwlz_policy_decisions_total\{result="allowed",rule="UCIR-0001"\} [12]\.0', text)
    assert "iwlz_store_records 1.0" in text and "iwlz_request_seconds_bucket" in text
    assert "QIR-0001-ZKi" in policy["templates"] and policy["templates"]["QBR-0001-ZA"]["rules"][0]["hide"] == ["pgbPercentage"]
    # Every metric the example alert rules watch is served.
    rules = (Path(__file__).resolve().parents[3] / "examples" / "operations" / "iwlz-alerts.yml").read_text()
    watched = set(re.findall(r"\b(iwlz_[a-z_]+)", rules))
    assert watched and all(re.search(rf"^{name}[{{ ]", text, re.M) for name in watched), watched
    assert 'iwlz_outbox_notifications{status="pending"}' in text and "iwlz_audit_witnessed_age_seconds" in text
    ciz.ready = False
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{ciz.url}/health") as r:
            assert r.status == 503


@pytest.mark.parametrize(
    "tamper,detail",
    [
        ("UPDATE audit SET result = 'denied' WHERE seq = 2", "entry 2 was changed"),
        ("DELETE FROM audit WHERE seq = 2", "entry 2 is missing"),
        ("UPDATE audit SET seq = seq + 100 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3; "
         "UPDATE audit SET seq = 3 WHERE seq = 102", "entry 2 was changed"),
        ("DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)", "signed head names entry"),
    ],
    ids=["changed", "removed", "reordered", "truncated"],
)
async def test_audit_verify_detects_tampering(network: Network, tamper: str, detail: str) -> None:
    ciz, zk = await network.start("ciz", "zk5151")
    await ciz.registers.put("WlzIndicatie", sample("wlzIndicaties", 0), actor=ciz.actor, now=ciz.now())
    for _ in range(3):
        await zk.query_peer(ciz.url, "QIR-0001-ZKi", {"wlzIndicatieID": IND0, "uzovi": "5151"}, [])
    await network.settle()
    intact, count, message = await ciz.audit.verify()
    assert intact and count >= 4 and message == "chain intact"
    await ciz.stop()
    network.nodes.pop("ciz")
    with closing(sqlite3.connect(ciz.home.database_path)) as db, db:
        db.executescript(tamper)
    intact, _, found, _ = await read_audit(ciz.home, verify=True, limit=0)
    assert not intact and detail in found


async def test_a_body_spelling_half_a_surrogate_pair_is_refused_as_the_callers_mistake(network: Network,
                                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """JSON may escape a lone surrogate ("\\ud800"): no character, no UTF-8, so nothing the node can store, sign or
    send. A record holding one was taken in and failed deep inside, as "the node could not handle this request"
    (503) with a traceback in the log; the other bodies failed later checks by luck. Every body is refused at the
    door now, as the caller's mistake, and nothing is stored."""
    ciz, zk = await network.start("ciz", "zk5151")
    lone = "\ud800"
    record = sample("wlzIndicaties", 0) | {"besluitnummer": f"B-{lone}"}
    bodies = [
        (ciz, "records/WlzIndicatie", record),
        (ciz, "records/WlzIndicatie/bulk", [record]),
        (zk, "query", {"peer": ciz.identity.did, "template": "QIR-0001-ZKi", "params": {"wlzIndicatieID": lone, "uzovi": "5151"}}),
        (zk, "melding", {"peer": ciz.identity.did, "record": f"WlzIndicatie/{lone}", "rule": "R1", "description": lone}),
        (zk, "users", {"name": f"a{lone}", "role": "reader"}),
    ]
    async with aiohttp.ClientSession() as http:
        for node, path, body in bodies:
            async with http.post(f"{node.admin_url}/admin/v1/{path}", json=body, headers=auth(node)) as r:
                answer = await r.json()
                assert (r.status, answer["error"]) == (400, "invalid"), (path, answer)
                assert "surrogate" in answer["reason"], (path, answer)
    assert "the admin API failed" not in caplog.text
    assert await ciz.registers.count() == 0
    assert [u for u in await zk.users.list() if lone in u["name"]] == []
