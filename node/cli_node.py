"""The iwlz commands that run a node or talk to a running one."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Any

from node.adminclient import AdminClient, read_json_arg
from node.cli import _EXTENSIONS, command, emit
from node.errors import UsageError
from node.home import NodeHome


@command("run")
def _run(args: argparse.Namespace) -> int:
    from node.service import Node

    logging.basicConfig(level=logging.INFO if not args.quiet else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    home = NodeHome(Path(args.home)).require()

    async def main() -> None:
        node = Node(home, host=args.host, port=args.port, admin_port=args.admin_port, bootstrap=args.bootstrap,
                    public_url=args.public_url,
                    mdns=False if args.no_mdns else None, mdns_interfaces=args.mdns_interface,
                    gossip_interval=args.gossip_interval)
        await node.start()
        print(f"ready {node.url} admin {node.admin_url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await node.stop()

    asyncio.run(main())
    return 0


def _admin(args: argparse.Namespace) -> AdminClient:
    return AdminClient(NodeHome(Path(args.home)))


@command("record-put")
def _record_put(args: argparse.Namespace) -> int:
    result = _admin(args).call("POST", f"/admin/v1/records/{args.kind}", read_json_arg(args.file))
    emit(args, result, f"{result['kind']}/{result['id']} version {result['version']}{'' if result['changed'] else ' (unchanged)'}")
    return 0


@command("record-get")
def _record_get(args: argparse.Namespace) -> int:
    suffix = "?history=1" if args.history else ""
    result = _admin(args).call("GET", f"/admin/v1/records/{args.kind}/{args.id}{suffix}")
    print(json.dumps(result if args.history else result["versions"][-1], indent=2, ensure_ascii=False))
    return 0


@command("record-list")
def _record_list(args: argparse.Namespace) -> int:
    result = _admin(args).call("GET", f"/admin/v1/records/{args.kind}?limit={args.limit}")
    emit(args, result, "\n".join(f"{r['kind']}/{r['id']} v{r['version']}" for r in result["records"]) or "(none)")
    return 0


@command("record-delete")
def _record_delete(args: argparse.Namespace) -> int:
    result = _admin(args).call("DELETE", f"/admin/v1/records/{args.kind}/{args.id}")
    emit(args, result, f"{result['kind']}/{result['id']} deleted (tombstone version {result['version']})")
    return 0


def _evidence(paths: list[str]) -> list[str]:
    """The signed records in files that hold the JSON output of an earlier query."""
    out = []
    for path in paths:
        value = read_json_arg(path)
        records = value.get("records", []) if isinstance(value, dict) else []
        out.extend(r["signed"] for r in records if isinstance(r, dict) and "signed" in r)
    if paths and not out:
        raise UsageError("the evidence files hold no signed records (save the --json output of iwlz query)")
    return out


@command("query")
def _query(args: argparse.Namespace) -> int:
    params = {}
    for pair in args.params:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"parameter {pair!r} is not key=value")
        params[key] = value
    body = {"peer": args.peer, "template": args.template, "params": params, "evidence": _evidence(args.evidence or []),
            "history": args.history}
    result = _admin(args).call("POST", "/admin/v1/query", body)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        for record in result["records"]:
            print(f"# {record['kind']}/{record['id']} v{record['version']} from {record['source_organisation']}")
            print(json.dumps(record["data"], indent=2, ensure_ascii=False))
        if not result["records"]:
            print("(no records)")
    return 0


@command("audit")
def _audit(args: argparse.Namespace) -> int:
    from node.audit_offline import read_audit

    intact, count, detail, entries = asyncio.run(read_audit(NodeHome(Path(args.home)), verify=args.verify, limit=args.limit))
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


@command("policy")
def _policy(args: argparse.Namespace) -> int:
    from node.policy import load_matrix

    NodeHome(Path(args.home)).require()
    print(json.dumps(load_matrix(), indent=2, ensure_ascii=False))
    return 0


@command("peers")
def _peers(args: argparse.Namespace) -> int:
    result = _admin(args).call("GET", "/admin/v1/peers")
    emit(args, result, "\n".join(
        f"{p['role']:13} {p['organisation']:24} {json.dumps(p['identifiers'])} {p['endpoints'][0]} via {p['source']}"
        for p in result["peers"]) or "(no peers)")
    return 0


@command("meldingen")
def _meldingen(args: argparse.Namespace) -> int:
    result = _admin(args).call("GET", "/admin/v1/meldingen")
    emit(args, result, "\n".join(f"{m['melding_id']} {m['rule']} {m['record']} from {m['sender_org']}: {m['status']}"
                                 for m in result["meldingen"]) or "(no meldingen)")
    return 0


@command("purge")
def _purge(args: argparse.Namespace) -> int:
    result = _admin(args).call("POST", "/admin/v1/purge", {"today": args.today} if args.today else {})
    emit(args, result, f"purged {result['purged']} records whose retention period ended")
    return 0


@command("outbox")
def _outbox(args: argparse.Namespace) -> int:
    admin = _admin(args)
    if args.retry:
        result = admin.call("POST", "/admin/v1/outbox/retry", {} if args.retry == "all" else {"id": args.retry})
        emit(args, result, f"{result['retried']} dead letter(s) queued again")
        return 0
    rows = admin.call("GET", "/admin/v1/outbox" + ("?status=dead" if args.dead else ""))["outbox"]
    emit(args, {"outbox": rows}, "\n".join(
        f"{r['notification_id']} {r['status']:9} {r['event_type']:44} -> {r['receiver_id_type']} {r['receiver_id']}"
        f" attempts {r['attempts']}{'  ' + r['last_error'] if r['last_error'] else ''}" for r in rows) or "(empty)")
    return 0


@command("inbox")
def _inbox(args: argparse.Namespace) -> int:
    rows = _admin(args).call("GET", "/admin/v1/inbox")["inbox"]
    emit(args, {"inbox": rows}, "\n".join(
        f"{r['notification_id']} {r['event_type']:44} from {r['sender_org']:20} {r['status']:12} {r['detail'] or ''}"
        for r in rows) or "(empty)")
    return 0


@command("subscribe")
def _subscribe(args: argparse.Namespace) -> int:
    result = _admin(args).call("POST", "/admin/v1/subscribe", {"peer": args.peer, "events": args.events})
    emit(args, result, f"subscription {result['subscription_id']}")
    return 0


@command("unsubscribe")
def _unsubscribe(args: argparse.Namespace) -> int:
    result = _admin(args).call("POST", "/admin/v1/unsubscribe", {"peer": args.peer, "subscription_id": args.subscription_id})
    emit(args, result, f"subscription {result['unsubscribed']} ended")
    return 0


@command("melding")
def _melding(args: argparse.Namespace) -> int:
    result = _admin(args).call("POST", "/admin/v1/melding", {"peer": args.peer, "record": args.record, "rule": args.rule,
                                                              "description": args.description})
    emit(args, result, f"melding {result['melding_id']}: {result['status']}")
    return 0


@command("demo")
def _demo(args: argparse.Namespace) -> int:
    from node.demo import run_demo

    return run_demo(Path(args.dir), keep_running=not args.once, base_port=args.base_port)


def extend(sub: Any) -> None:
    p = sub.add_parser("run", help="run a node until interrupted")
    p.add_argument("home")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--admin-port", type=int)
    p.add_argument("--public-url", help="the URL peers reach this node at (behind NAT, in containers)")
    p.add_argument("--bootstrap", action="append", default=None, metavar="URL")
    p.add_argument("--no-mdns", action="store_true", help="do not announce or browse on the LAN")
    p.add_argument("--mdns-interface", action="append", metavar="IP", help="run mDNS only on this interface address")
    p.add_argument("--gossip-interval", type=float, help="seconds between gossip rounds (0: no gossip)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler="run")

    record = sub.add_parser("record", help="the node's own registers").add_subparsers(dest="record_command", required=True)
    p = record.add_parser("put", help="store a record (a new version if it exists)")
    p.add_argument("home")
    p.add_argument("kind")
    p.add_argument("file", help="JSON file, or - for stdin")
    p.set_defaults(handler="record-put")
    p = record.add_parser("get")
    p.add_argument("home")
    p.add_argument("kind")
    p.add_argument("id")
    p.add_argument("--history", action="store_true")
    p.set_defaults(handler="record-get")
    p = record.add_parser("list")
    p.add_argument("home")
    p.add_argument("kind")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(handler="record-list")
    p = record.add_parser("delete")
    p.add_argument("home")
    p.add_argument("kind")
    p.add_argument("id")
    p.set_defaults(handler="record-delete")

    p = sub.add_parser("query", help="ask a peer, with a query template")
    p.add_argument("home")
    p.add_argument("--peer", required=True, help="the peer's URL or did")
    p.add_argument("--evidence", action="append", metavar="FILE", help="JSON output of an earlier query to present as evidence")
    p.add_argument("--history", action="store_true")
    p.add_argument("template")
    p.add_argument("params", nargs="*", metavar="KEY=VALUE")
    p.set_defaults(handler="query")

    p = sub.add_parser("audit", help="show or verify the audit log")
    p.add_argument("home")
    p.add_argument("--verify", action="store_true")
    p.add_argument("--limit", type=int, default=200)
    p.set_defaults(handler="audit")

    for name, text in (("policy", "print the authorization matrix this node applies"), ("peers", "show the peer table"),
                       ("meldingen", "show the meldingen received")):
        p = sub.add_parser(name, help=text)
        p.add_argument("home")
        p.set_defaults(handler=name)

    p = sub.add_parser("outbox", help="notifications this node sends: pending, delivered, dead")
    p.add_argument("home")
    p.add_argument("--dead", action="store_true", help="only dead letters")
    p.add_argument("--retry", metavar="ID", help="queue a dead letter again ('all' for every one)")
    p.set_defaults(handler="outbox")
    p = sub.add_parser("inbox", help="notifications this node received and what it did with them")
    p.add_argument("home")
    p.set_defaults(handler="inbox")
    p = sub.add_parser("subscribe", help="subscribe at a source to event types")
    p.add_argument("home")
    p.add_argument("--peer", required=True)
    p.add_argument("events", nargs="+", metavar="EVENT")
    p.set_defaults(handler="subscribe")
    p = sub.add_parser("unsubscribe", help="end a subscription")
    p.add_argument("home")
    p.add_argument("--peer", required=True)
    p.add_argument("subscription_id")
    p.set_defaults(handler="unsubscribe")
    p = sub.add_parser("melding", help="report an error in a record to its source (IWLZFOUTMELDING)")
    p.add_argument("home")
    p.add_argument("--peer", required=True)
    p.add_argument("--record", required=True, help="e.g. WlzIndicatie/<uuid>")
    p.add_argument("--rule", required=True, help="the rule the record breaks, e.g. IRG0012")
    p.add_argument("--description", default="")
    p.set_defaults(handler="melding")

    p = sub.add_parser("purge", help="remove records whose retention period has ended")
    p.add_argument("home")
    p.add_argument("--today", help="YYYY-MM-DD (default: today)")
    p.set_defaults(handler="purge")

    p = sub.add_parser("demo", help="run a local multi-party network on 127.0.0.1")
    p.add_argument("--dir", default="demo-network")
    p.add_argument("--once", action="store_true", help="walk through the scenarios, then stop")
    p.add_argument("--base-port", type=int, default=0)
    p.set_defaults(handler="demo")


_EXTENSIONS.append(extend)
