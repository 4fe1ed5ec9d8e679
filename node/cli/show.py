"""Commands that show what a node knows: audit (and its verification), policy, peers."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from node.admin.client import AdminClient
from node.cli.common import admin, command, emit
from node.errors import UsageError
from node.home import NodeHome, open_private


def audit(args: argparse.Namespace) -> int:
    from node.store.offline import read_audit  # the store is loaded only by the commands that open it

    home = NodeHome(Path(args.home)).require()
    if args.witnesses:
        return _verify_with_witnesses(args, home)
    if args.request is not None:
        return _signed_request(args, home)
    intact, count, detail, entries = asyncio.run(read_audit(home, verify=args.verify, limit=args.limit,
                                                            full=not args.incremental))
    if args.verify:
        emit(args, {"intact": intact, "entries": count, "detail": detail},
             f"audit chain {'intact' if intact else 'BROKEN'}: {count} entries checked; {detail}")
        return 0 if intact else 3
    if args.json:
        print(json.dumps(entries, indent=2))
    else:
        for e in entries:
            who = e["actor_role"] + (f", {e['actor_user']}" if e.get("actor_user") else "")
            print(f"{e['seq']:6} {e['at']} {e['action']} {e['result']:8} {e['event']:32} {e['actor_org']} ({who})"
                  f" {e['record'] or ''} {('rule ' + e['rule']) if e['rule'] else ''}")
    return 0


def _verify_with_witnesses(args: argparse.Namespace, home: NodeHome) -> int:
    """Through the running node: it signs the questions to its witnesses."""
    query = "?witnesses=1" + ("" if args.incremental else "&full=1")
    result = AdminClient(home).call("GET", "/admin/v1/audit/verify" + query)
    emit(args, result, f"audit chain {'intact' if result['intact'] else 'BROKEN'}: {result['entries']} entries; "
                       f"{result['detail']}; witnesses: {result['witnesses']}")
    return 0 if result["intact"] else 3


def _signed_request(args: argparse.Namespace, home: NodeHome) -> int:
    """The proof of who asked, for a dispute: the requester's signed message as it came, while the node keeps it."""
    from node.store.offline import signed_request

    if args.out is None:
        raise UsageError("give --out FILE: the signed request is binary (COSE), and may hold personal data, sealed")
    request, digest = asyncio.run(signed_request(home, args.request))
    if digest is None:
        raise UsageError(f"audit entry {args.request} names no signed request")
    if request is None:
        raise UsageError(f"audit entry {args.request} keeps its signed request by its SHA-256 only ({digest.hex()}): "
                         "the bytes went after audit_request_days")
    try:
        with open_private(args.out, "wb") as out:
            out.write(request)
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc.strerror}") from exc
    emit(args, {"seq": args.request, "request_sha256": digest.hex(), "bytes": len(request), "out": args.out},
         f"audit entry {args.request}: the signed request ({len(request)} bytes, SHA-256 {digest.hex()}) is in {args.out}")
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


def schema(args: argparse.Namespace) -> int:
    from node.store.records import json_schema

    print(json.dumps(json_schema(args.kind), indent=2, ensure_ascii=False))
    return 0


def register(sub: Any) -> None:
    p = command(sub, "audit", audit, "show or verify the audit log")
    p.add_argument("--verify", action="store_true", help="check the chain against its signed head")
    p.add_argument("--incremental", action="store_true",
                   help="hash only the entries after the last signed checkpoint (what the dashboard does)")
    p.add_argument("--witnesses", action="store_true",
                   help="also ask the witnesses which head they hold (the node must run)")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--request", type=int, metavar="SEQ",
                   help="write the signed request audit entry SEQ names (COSE, as it came) to --out: the proof of who asked")
    p.add_argument("--out", "-o", metavar="FILE", help="where --request writes (readable by its owner only)")
    command(sub, "policy", policy, "print the authorization matrix this node applies")
    command(sub, "peers", peers, "show the peer table")
    p = command(sub, "schema", schema, "print the JSON Schema of a record type (what iwlz record put takes)", home=False)
    p.add_argument("kind", help="WlzIndicatie, Bemiddeling, Levering or Zorgaanbod")


__all__ = ["register"]
