"""Commands that show what a node knows: audit (and its verification), policy, peers."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from node.cli.common import admin, command, emit
from node.home import NodeHome


def audit(args: argparse.Namespace) -> int:
    from node.store.offline import read_audit  # the store is loaded only by the commands that open it

    home = NodeHome(Path(args.home)).require()
    intact, count, detail, entries = asyncio.run(read_audit(home, verify=args.verify, limit=args.limit))
    if args.verify:
        emit(args, {"intact": intact, "entries": count, "detail": detail},
             f"audit chain {'intact' if intact else 'BROKEN'}: {count} entries checked; {detail}")
        return 0 if intact else 3
    if args.json:
        print(json.dumps(entries, indent=2))
    else:
        for e in entries:
            print(f"{e['seq']:6} {e['at']} {e['action']} {e['result']:8} {e['event']:32} {e['actor_org']} ({e['actor_role']})"
                  f" {e['record'] or ''} {('rule ' + e['rule']) if e['rule'] else ''}")
    return 0


def policy(args: argparse.Namespace) -> int:
    from node.policy.matrix import load_matrix

    NodeHome(Path(args.home)).require()
    print(json.dumps(load_matrix(), indent=2, ensure_ascii=False))
    return 0


def peers(args: argparse.Namespace) -> int:
    result = admin(args).call("GET", "/admin/v1/peers")
    emit(args, result, "\n".join(
        f"{p['role']:13} {p['organisation']:24} {json.dumps(p['identifiers'])} {p['endpoints'][0]} via {p['source']}"
        for p in result["peers"]) or "(no peers)")
    return 0


def register(sub: Any) -> None:
    p = command(sub, "audit", audit, "show or verify the audit log")
    p.add_argument("--verify", action="store_true")
    p.add_argument("--limit", type=int, default=200)
    command(sub, "policy", policy, "print the authorization matrix this node applies")
    command(sub, "peers", peers, "show the peer table")


__all__ = ["register"]
