"""Commands for notifications and meldingen: outbox, inbox, subscribe, unsubscribe, melding send/sent/list/answer."""

from __future__ import annotations

import argparse
from typing import Any

from node.cli.common import admin, command, emit


def outbox(args: argparse.Namespace) -> int:
    client = admin(args)
    if args.retry:
        result = client.call("POST", "/admin/v1/outbox/retry", {} if args.retry == "all" else {"id": args.retry})
        emit(args, result, f"{result['retried']} dead letter(s) queued again")
        return 0
    rows = client.call("GET", "/admin/v1/outbox" + ("?status=dead" if args.dead else ""))["outbox"]
    emit(args, {"outbox": rows}, "\n".join(
        f"{r['notification_id']} {r['status']:9} {r['event_type']:44} -> {r['receiver_id_type']} {r['receiver_id']}"
        f" attempts {r['attempts']}{'  ' + r['last_error'] if r['last_error'] else ''}" for r in rows) or "(empty)")
    return 0


def inbox(args: argparse.Namespace) -> int:
    rows = admin(args).call("GET", "/admin/v1/inbox")["inbox"]
    emit(args, {"inbox": rows}, "\n".join(
        f"{r['notification_id']} {r['event_type']:44} from {r['sender_org']:20} {r['status']:12} {r['detail'] or ''}"
        + (f" (asked {r['attempts']} times)" if r["status"] == "fetch-failed" else "") for r in rows) or "(empty)")
    return 0


def subscribe(args: argparse.Namespace) -> int:
    result = admin(args).call("POST", "/admin/v1/subscribe", {"peer": args.peer, "events": args.events})
    emit(args, result, f"subscription {result['subscription_id']}")
    return 0


def unsubscribe(args: argparse.Namespace) -> int:
    result = admin(args).call("POST", "/admin/v1/unsubscribe", {"peer": args.peer, "subscription_id": args.subscription_id})
    emit(args, result, f"subscription {result['unsubscribed']} ended")
    return 0


def melding_send(args: argparse.Namespace) -> int:
    result = admin(args).call("POST", "/admin/v1/melding", {"peer": args.peer, "record": args.record, "rule": args.rule,
                                                             "description": args.description})
    emit(args, result, f"melding {result['melding_id']}: {result['status']} (iwlz melding sent shows how it goes)")
    return 0


def melding_sent(args: argparse.Namespace) -> int:
    rows = admin(args).call("GET", "/admin/v1/meldingen/sent")["meldingen"]
    emit(args, {"meldingen": rows}, "\n".join(
        f"{m['melding_id']} {m['rule']} {m['record']} -> {m['receiver_org']}: {m['status']}"
        f"{' (' + m['reden'] + ')' if m['reden'] else ''}{'  ' + m['last_error'] if m['status'] == 'geweigerd' else ''}"
        for m in rows) or "(no meldingen sent)")
    return 0


def melding_list(args: argparse.Namespace) -> int:
    state = "overdue" if args.overdue else "open" if args.open else "all"
    rows = admin(args).call("GET", f"/admin/v1/meldingen?state={state}")["meldingen"]
    emit(args, {"meldingen": rows}, "\n".join(
        f"{m['meldingID']} {m['regel']} {m['record']} from {m['melderOrganisatie']}: {m['status']}, "
        f"termijn {m['termijn']}{' OVERDUE' if m['overdue'] else ''}{' - ' + m['reden'] if m.get('reden') else ''}"
        for m in rows) or "(no meldingen)")
    return 0


def melding_answer(args: argparse.Namespace) -> int:
    result = admin(args).call("POST", f"/admin/v1/meldingen/{args.id}/answer", {"status": args.status, "reason": args.reason})
    emit(args, result, f"melding {result['meldingID']}: {result['status']}; the reporter is notified")
    return 0


def register(sub: Any) -> None:
    p = command(sub, "outbox", outbox, "notifications this node sends: pending, delivered, dead")
    p.add_argument("--dead", action="store_true", help="only dead letters")
    p.add_argument("--retry", metavar="ID", help="queue a dead letter again ('all' for every one)")
    command(sub, "inbox", inbox, "notifications this node received and what it did with them")
    p = command(sub, "subscribe", subscribe, "subscribe at a source to event types")
    p.add_argument("--peer", required=True)
    p.add_argument("events", nargs="+", metavar="EVENT")
    p = command(sub, "unsubscribe", unsubscribe, "end a subscription")
    p.add_argument("--peer", required=True)
    p.add_argument("subscription_id")
    group = sub.add_parser("melding", help="meldingen (IWLZFOUTMELDING): report errors, follow and answer them"
                           ).add_subparsers(dest="melding_command", required=True)
    p = command(group, "send", melding_send, "report an error in a record to its source; retried until it arrives")
    p.add_argument("--peer", required=True, help="the source: did, URL, uzovi:…, agb:…, kvk:… or register:…")
    p.add_argument("--record", required=True, help="e.g. WlzIndicatie/<uuid>")
    p.add_argument("--rule", required=True, help="the rule the record breaks, e.g. IRG0012")
    p.add_argument("--description", default="")
    command(group, "sent", melding_sent, "the meldingen this node sent, and the answers")
    p = command(group, "list", melding_list, "the meldingen this node received as a source")
    p.add_argument("--open", action="store_true", help="only those not yet answered")
    p.add_argument("--overdue", action="store_true", help="only those open past their deadline (one working day)")
    p = command(group, "answer", melding_answer, "give a melding received its next status; the reporter is told")
    p.add_argument("id")
    p.add_argument("--status", required=True, choices=("in_behandeling", "afgehandeld", "afgewezen"))
    p.add_argument("--reason", help="required to close it (afgehandeld, afgewezen)")


__all__ = ["register"]
