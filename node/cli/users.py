"""Commands for the people who use a node: user add, list, revoke; web (where its web interface is)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from node.cli.common import admin, command, emit, now
from node.home import NodeHome
from node.store import ROLES


def _running(home: NodeHome) -> bool:
    return (home.path / "run.json").exists()


async def _offline(home: NodeHome, action: str, name: str = "", role: str = "") -> Any:
    """The node is stopped: change its users in its store directly, audited as the node itself."""
    from node.store import Actor, AuditLog, Store, Users

    async with Store(home.database_path) as store:
        audit = AuditLog(store, home.identity())
        await audit.load()
        users = Users(store)
        await users.load()
        if action == "list":
            return {"users": await users.list()}
        member = home.trust_store().verify_certificate(home.certificate(), now())
        entry = audit.entry(now=now(), event=f"user.{action}", action="C" if action == "add" else "U",
                            result=role or "revoked", actor=Actor.of(member), record=f"user/{name}")
        if action == "add":
            return {"name": name, "role": role, "token": await users.add(name, role, now=now(), also=(entry,))}
        await users.revoke(name, now=now(), also=(entry,))
        return {"name": name, "revoked": True}


def user_add(args: argparse.Namespace) -> int:
    home = NodeHome(Path(args.home)).require()
    if _running(home):
        result = admin(args).call("POST", "/admin/v1/users", {"name": args.name, "role": args.role})
    else:
        result = asyncio.run(_offline(home, "add", args.name, args.role))
    emit(args, result, f"user {result['name']} ({result['role']}) added; the token, shown this once:\n{result['token']}\n"
                       "Give it to this person only; with it he signs in to the web interface, or sets IWLZ_TOKEN for iwlz.")
    return 0


def user_list(args: argparse.Namespace) -> int:
    home = NodeHome(Path(args.home)).require()
    result = admin(args).call("GET", "/admin/v1/users") if _running(home) else asyncio.run(_offline(home, "list"))
    emit(args, result, "\n".join(f"{u['name']:24} {u['role']:11} {'revoked' if u['revoked_at'] else 'active'}"
                                 for u in result["users"]) or "(no users; the node's own admin.token works)")
    return 0


def user_revoke(args: argparse.Namespace) -> int:
    home = NodeHome(Path(args.home)).require()
    if _running(home):
        result = admin(args).call("POST", f"/admin/v1/users/{args.name}/revoke", {})
    else:
        result = asyncio.run(_offline(home, "revoke", args.name))
    emit(args, result, f"user {result['name']} revoked: his token no longer works")
    return 0


def web(args: argparse.Namespace) -> int:
    """Where the web interface of a running node is, and how a person signs in."""
    from node.admin.client import AdminClient

    client = AdminClient(NodeHome(Path(args.home)).require())
    url = f"{client.base}/beheer"
    emit(args, {"url": url}, f"web interface: {url}\nsign in with your own code (iwlz user add {args.home} NAME --role "
                             "medewerker prints one); the admin listener answers on this machine only, unless admin_plain_http "
                             "says otherwise (docs/OPERATIONS.md)")
    return 0


def register(sub: Any) -> None:
    command(sub, "web", web, "where the web interface of the running node is, and how to sign in")
    group = sub.add_parser("user", help="the people who use this node: named users with a role").add_subparsers(
        dest="user_command", required=True)
    p = command(group, "add", user_add, "add a person with a role; prints his token once")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=ROLES)
    command(group, "list", user_list, "the users, active and revoked")
    p = command(group, "revoke", user_revoke, "end a user's access (his name stays in the audit log)")
    p.add_argument("name")


__all__ = ["register"]
