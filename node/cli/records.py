"""Commands for the node's own registers and for asking peers: record put/get/list/delete, query, purge."""

from __future__ import annotations

import argparse
import json
from typing import Any

from node.admin.client import read_json_arg
from node.cli.common import admin, command, emit, personal_data_option, shown
from node.errors import UsageError


def record_put(args: argparse.Namespace) -> int:
    result = admin(args).call("POST", f"/admin/v1/records/{args.kind}", read_json_arg(args.file))
    emit(args, result, f"{result['kind']}/{result['id']} version {result['version']}{'' if result['changed'] else ' (unchanged)'}")
    return 0


def record_get(args: argparse.Namespace) -> int:
    suffix = "?history=1" if args.history else ""
    result = admin(args).call("GET", f"/admin/v1/records/{args.kind}/{args.id}{suffix}")
    print(json.dumps(shown(args, result if args.history else result["versions"][-1]), indent=2, ensure_ascii=False))
    return 0


def record_list(args: argparse.Namespace) -> int:
    result = admin(args).call("GET", f"/admin/v1/records/{args.kind}?limit={args.limit}")
    emit(args, result, "\n".join(f"{r['kind']}/{r['id']} v{r['version']}" for r in result["records"]) or "(none)")
    return 0


def record_delete(args: argparse.Namespace) -> int:
    result = admin(args).call("DELETE", f"/admin/v1/records/{args.kind}/{args.id}")
    emit(args, result, f"{result['kind']}/{result['id']} deleted (tombstone version {result['version']})")
    return 0


def _evidence(paths: list[str]) -> list[str]:
    """The signed records in files that hold the JSON output of an earlier query."""
    out: list[str] = []
    for path in paths:
        value = read_json_arg(path)
        records = value.get("records", []) if isinstance(value, dict) else []
        out.extend(r["signed"] for r in records if isinstance(r, dict) and "signed" in r)
    if paths and not out:
        raise UsageError("the evidence files hold no signed records (save the --json output of iwlz query)")
    return out


def query(args: argparse.Namespace) -> int:
    params = {}
    for pair in args.params:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"parameter {pair!r} is not key=value")
        params[key] = value
    body = {"peer": args.peer, "template": args.template, "params": params, "evidence": _evidence(args.evidence or []),
            "history": args.history, "held_evidence": args.held_evidence}
    result = admin(args).call("POST", "/admin/v1/query", body)
    if args.json:  # the signed records stay whole (they are evidence); their readable data follows the option
        print(json.dumps({"records": [r | {"data": shown(args, r["data"])} for r in result["records"]]}, indent=2,
                         ensure_ascii=False))
    else:
        for record in result["records"]:
            print(f"# {record['kind']}/{record['id']} v{record['version']} from {record['source_organisation']}")
            print(json.dumps(shown(args, record["data"]), indent=2, ensure_ascii=False))
        if not result["records"]:
            print("(no records)")
    return 0


def purge(args: argparse.Namespace) -> int:
    body = {"dry_run": args.dry_run, **({"today": args.today} if args.today else {})}
    result = admin(args).call("POST", "/admin/v1/purge", body)
    verb = "would purge" if args.dry_run else "purged"
    lines = [f"{verb} {result['purged']} record(s) whose retention period ended, "
             f"and {result['notifications']} notification(s) delivered or acted on long enough ago; "
             f"{result['requests']} signed request(s) in the audit log {'would be' if args.dry_run else 'are now'} "
             "kept by their hash only"]
    emit(args, result, "\n".join(lines + [f"  {path}" for path in result["records"]]))
    return 0


def register(sub: Any) -> None:
    record = sub.add_parser("record", help="the node's own registers").add_subparsers(dest="record_command", required=True)
    p = command(record, "put", record_put, "store a record (a new version if it exists)")
    p.add_argument("kind")
    p.add_argument("file", help="JSON file, or - for stdin")
    p = command(record, "get", record_get)
    p.add_argument("kind")
    p.add_argument("id")
    p.add_argument("--history", action="store_true")
    personal_data_option(p)
    p = command(record, "list", record_list)
    p.add_argument("kind")
    p.add_argument("--limit", type=int, default=100)
    p = command(record, "delete", record_delete)
    p.add_argument("kind")
    p.add_argument("id")

    p = command(sub, "query", query, "ask a peer, with a query template")
    p.add_argument("--peer", required=True, help="the peer's URL or did")
    p.add_argument("--evidence", action="append", metavar="FILE", help="JSON output of an earlier query to present as evidence")
    p.add_argument("--held-evidence", action="store_true",
                   help="also present the evidence this node holds about the indicatie or client (e.g. a consent)")
    p.add_argument("--history", action="store_true")
    personal_data_option(p)
    p.add_argument("template")
    p.add_argument("params", nargs="*", metavar="KEY=VALUE")

    p = command(sub, "purge", purge, "remove records whose retention period has ended (the node also does so itself)")
    p.add_argument("--today", help="YYYY-MM-DD (default: today; the audit log names a date given)")
    p.add_argument("--dry-run", action="store_true", help="only show what would go")


__all__ = ["register"]
