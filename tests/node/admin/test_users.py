"""Named users of the admin API: each role may do what the table says and nothing else, and the audit log names the
person; a client sees the function and the organisation, not the name."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.admin.access import PERMISSIONS
from node.admin.api import ROUTE_GROUPS
from node.cli import main
from tests.node.kit import BSN0, IND0, Network, sample

pytestmark = pytest.mark.asyncio
DOCS = Path(__file__).resolve().parents[3] / "docs" / "OPERATIONS.md"


async def call(node: Any, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        async with http.request(method, f"{node.admin_url}{path}", json=body) as r:
            return r.status, await r.json()


async def add(node: Any, name: str, role: str) -> str:
    status, body = await call(node, node.home.admin_token(), "POST", "/admin/v1/users", {"name": name, "role": role})
    assert status == 201 and body["token"].startswith("iwlz_")
    return str(body["token"])


async def test_each_role_may_do_what_its_permissions_say_and_nothing_else(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    tokens = {role: await add(ciz, f"j.{role}", role) for role in ("beheerder", "medewerker", "auditor")}
    record = sample("wlzIndicaties", 0)
    cases = [  # (permission, method, path, body)
        ("view", "GET", "/admin/v1/node", None),
        ("write", "POST", "/admin/v1/records/WlzIndicatie", record),
        ("read", "GET", f"/admin/v1/records/WlzIndicatie/{IND0}", None),
        ("read", "GET", f"/admin/v1/search?q={BSN0}", None),
        ("audit", "GET", "/admin/v1/audit", None),
        ("operate", "GET", "/admin/v1/users", None),
        ("operate", "POST", "/admin/v1/purge", {"dry_run": True}),
    ]
    for role, token in tokens.items():
        for permission, method, path, body in cases:
            status, answer = await call(ciz, token, method, path, body)
            if role in PERMISSIONS[permission]:
                assert status in (200, 201), (role, path, answer)
            else:
                assert status == 403 and answer["error"] == "forbidden" and role in answer["reason"], (role, path)
    # Nothing refused changed anything: the one write is the medewerker's or the beheerder's.
    versions = await ciz.registers.history("WlzIndicatie", IND0)
    assert [v.version for v in versions] == [1]


async def test_the_audit_names_the_person_and_the_client_sees_his_function(network: Network) -> None:
    ciz, client = await network.start("ciz", "client")
    token = await add(ciz, "Anna de Vries", "medewerker")
    status, _ = await call(ciz, token, "POST", "/admin/v1/records/WlzIndicatie", sample("wlzIndicaties", 0))
    assert status == 201
    status, found = await call(ciz, token, "GET", f"/admin/v1/search?q={BSN0}")
    assert status == 200 and [r["id"] for r in found["records"]] == [IND0]
    mine = [e for e in await ciz.audit.entries(subject=BSN0) if e.actor_user == "Anna de Vries"]
    assert [(e.event, e.action, e.actor_role, e.actor_org) for e in mine] == [
        ("record.create", "C", "medewerker", "CIZ"), ("admin.search", "R", "medewerker", "CIZ")]
    assert (await ciz.audit.verify(full=True))[0]
    # The client's own view: the function and the organisation, never the name.
    log = await client.client_view.access_log()
    shown = [e for e in log["entries"] if e["bron"] == "CIZ"]
    # His own node's query of his data is there too: the first time, it follows the chain of his records.
    assert {e["wie"] for e in shown} == {"medewerker van CIZ", "u zelf"}
    assert all("Anna" not in str(e) for e in log["entries"])
    # Who read the record, as the web interface shows it: with the name, for the organisation itself.
    status, readers = await call(ciz, token, "GET", f"/admin/v1/records/WlzIndicatie/{IND0}/readers")
    staff = [e["actor_user"] for e in readers["entries"] if e["actor_role"] == "medewerker"]  # not his own query
    assert staff[:2] == ["Anna de Vries", "Anna de Vries"]


async def test_a_revoked_user_is_refused_at_once_and_tokens_are_kept_hashed(network: Network) -> None:
    (ciz,) = await network.start("ciz")
    token = await add(ciz, "k.tijdelijk", "medewerker")
    assert (await call(ciz, token, "GET", "/admin/v1/node"))[0] == 200
    status, _ = await call(ciz, ciz.home.admin_token(), "POST", "/admin/v1/users/k.tijdelijk/revoke", {})
    assert status == 200
    assert (await call(ciz, token, "GET", "/admin/v1/node"))[0] == 401
    status, again = await call(ciz, ciz.home.admin_token(), "POST", "/admin/v1/users", {"name": "k.tijdelijk",
                                                                                         "role": "auditor"})
    assert status == 400 and "never reused" in again["reason"]
    raw = ciz.home.database_path.read_bytes() + b"".join(p.read_bytes() for p in ciz.home.path.glob("node.sqlite3-wal"))
    assert token.encode() not in raw
    events = [(e.event, e.record) for e in await ciz.audit.entries() if e.event.startswith("user.")]
    assert events == [("user.add", "user/k.tijdelijk"), ("user.revoke", "user/k.tijdelijk")]


async def test_users_from_the_command_line_with_the_node_running_and_stopped(network: Network, capsys: Any) -> None:
    (ciz,) = await network.start("ciz")
    home = str(ciz.home.path)
    assert await asyncio.to_thread(main, ["user", "add", home, "p.jansen", "--role", "auditor"]) == 0
    token = capsys.readouterr().out.split("shown this once:\n")[1].split("\n")[0]
    assert (await call(ciz, token, "GET", "/admin/v1/audit"))[0] == 200
    await ciz.stop()
    network.nodes.pop("ciz")
    assert await asyncio.to_thread(main, ["user", "add", home, "q.bakker", "--role", "beheerder"]) == 0
    assert await asyncio.to_thread(main, ["user", "revoke", home, "p.jansen"]) == 0
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["--json", "user", "list", home]) == 0
    listed = {u["name"]: (u["role"], bool(u["revoked_at"])) for u in __import__("json").loads(capsys.readouterr().out)["users"]}
    assert listed == {"p.jansen": ("auditor", True), "q.bakker": ("beheerder", False)}


async def test_the_operations_guide_lists_every_route_with_its_permission() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for group in ROUTE_GROUPS:
        for method, path, permission, _ in group.ROUTES:
            assert f"| `{method} {path}` | {permission} |" in text, f"{method} {path} is not in docs/OPERATIONS.md"
    for permission, roles in PERMISSIONS.items():
        shown = ", ".join(r for r in ("beheerder", "medewerker", "auditor") if r in roles)
        assert f"| {permission} | {shown} |" in text


async def test_a_purge_removes_only_what_has_passed_its_retention_today_and_names_who_asked(network: Network) -> None:
    """A purge leaves no version behind, only its audit entries. With a date of his choosing, a person allowed to
    run the node could remove records years before their retention ended, and the log said "retention ended",
    done by the node. For a person a later date only shows what would go then, and what he purges carries his
    name; the node's own token (its operator, who holds the database anyway) may purge by a date, which the log
    then names."""
    (ciz,) = await network.start("ciz")
    ended = sample("wlzIndicaties", 0) | {"einddatum": "2026-01-31"}  # kept 5 years: until 2031-01-31
    await ciz.registers.put("WlzIndicatie", ended, actor=ciz.actor, now=ciz.now())
    token = await add(ciz, "j.beheerder", "beheerder")

    status, answer = await call(ciz, token, "POST", "/admin/v1/purge", {"today": "2031-02-01"})
    assert status == 400 and "later date" in answer["reason"]
    assert [v.version for v in await ciz.registers.history("WlzIndicatie", IND0)] == [1]
    status, answer = await call(ciz, token, "POST", "/admin/v1/purge", {"today": "2031-02-01", "dry_run": True})
    assert status == 200 and answer["records"] == [f"WlzIndicatie/{IND0}"] and answer["dry_run"]
    assert [v.version for v in await ciz.registers.history("WlzIndicatie", IND0)] == [1]

    # What has passed its retention today goes, in the name of the person who asked.
    ciz.registers.retention = {"WlzIndicatie": {"ended": 0, "withdrawn": 0}}
    await ciz.registers.put("WlzIndicatie", ended | {"besluitnummer": "9" + ended["besluitnummer"][1:]},
                            actor=ciz.actor, now=ciz.now())  # its retention date follows the new rule
    status, answer = await call(ciz, token, "POST", "/admin/v1/purge", {})
    assert status == 200 and answer["records"] == [f"WlzIndicatie/{IND0}"]
    [purged] = [e for e in await ciz.audit.entries(limit=1000) if e.event == "record.purge"]
    assert purged.actor_user == "j.beheerder" and purged.actor_did == ciz.identity.did
    assert purged.result == "retention ended"

    # The operator's own token may purge by a later date; the log says so, and by whom.
    ciz.registers.retention = {}
    other = sample("wlzIndicaties", 1) | {"einddatum": "2026-01-31"}
    await ciz.registers.put("WlzIndicatie", other, actor=ciz.actor, now=ciz.now())
    status, answer = await call(ciz, ciz.home.admin_token(), "POST", "/admin/v1/purge", {"today": "2031-02-01"})
    assert status == 200 and answer["records"] == [f"WlzIndicatie/{other['wlzIndicatieID']}"]
    last = [e for e in await ciz.audit.entries(limit=1000) if e.event == "record.purge"][-1]
    assert last.result.startswith("retention ended by 2031-02-01, a date given on ") and last.actor_user is None
