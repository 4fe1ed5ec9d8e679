"""Commands for a client's own node: overview (his data from every source) and access-log (who looked at it)."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any

from node.cli.common import admin, command, emit, personal_data_option, shown
from node.errors import UsageError

RESULTS = {"allowed": "ingezien", "empty": "niets gevonden", "denied": "geweigerd", "ok": "vastgelegd", "stored": "ontvangen"}


def _since(text: str | None) -> int:
    if not text:
        return 0
    try:
        return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp())
    except ValueError as exc:
        raise UsageError(f"--since takes a date, YYYY-MM-DD: {text!r}") from exc


def overview(args: argparse.Namespace) -> int:
    view = admin(args).call("GET", "/admin/v1/client/overview?seen=1")
    emit(args, shown(args, view), render_overview(shown(args, view)))
    return 0


def render_overview(view: dict[str, Any]) -> str:
    lines = ["Mijn gegevens bij alle bronnen"]
    for source in view["asked"]:
        state = f"{source['records']} gegeven(s)" if source["answered"] else f"geen antwoord ({source['error']})"
        lines.append(f"  {source['organisation']:26} {state}")
    lines.append("\nIndicatie")
    for ind in view["indicaties"] or [{}]:
        if not ind:
            lines.append("  geen indicatie gevonden")
            continue
        lines.append(f"  {ind['soort']} van {ind['geldig_vanaf']} tot {ind['geldig_tot'] or 'onbepaalde tijd'}: "
                     f"{'geldig' if ind['geldig'] else 'niet geldig'}; zorgzwaartepakket {', '.join(ind['zorgzwaartepakketten'])}")
    lines.append("\nZorgkantoor")
    for zk in view["zorgkantoren"] or [{}]:
        lines.append(f"  {zk['zorgkantoor']} (sinds {zk['sinds']})"
                     + (f", overgedragen aan zorgkantoor {zk['overgedragen_aan']}" if zk.get("overgedragen_aan") else "")
                     if zk else "  nog geen zorgkantoor bekend")
    lines.append("\nZorgaanbieder")
    for za in view["zorgaanbieders"] or [{}]:
        lines.append(f"  {za['aanbieder']} sinds {za['sinds']}, zorgzwaartepakket {za['zzp']}"
                     + ("" if za["actueel"] else " (niet meer actueel)") if za else "  nog geen zorgaanbieder toegewezen")
    lines.append("\nStand van de zorg")
    for care in view["zorg"] or [{}]:
        lines.append(f"  {care['aanbieder']}: {care['status']}" + (f" (tot en met {care['tot']})" if care.get("tot") else "")
                     if care else "  nog geen zorg geregistreerd")
    if view.get("eigen_bijdrage"):
        lines.append("\nEigen bijdrage")
        lines.extend(f"  {e['bron']}: {e['bedragPerMaand']} per maand vanaf {e['vanaf']}"
                     + (f" tot en met {e['tot']}" if e.get("tot") else "") for e in view["eigen_bijdrage"])
    lines.append("\nZorgaanbod in mijn regio")
    for offer in view["zorgaanbod"] or [{}]:
        lines.append(f"  {offer['aanbieder']}: {', '.join(offer['zzpCodes'])}; {offer['vrijeCapaciteit']} plaats(en) vrij"
                     if offer else "  geen aanbod bekend")
    changes = view["wijzigingen"]
    lines.append(f"\nSinds ik vorige keer keek: {len(changes)} wijziging(en)")
    lines.extend(f"  {_time(c['at'])} {c['bron']}: {c['gebeurtenis']}" for c in changes)
    return "\n".join(lines)


def _time(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M")


def access_log(args: argparse.Namespace) -> int:
    log = admin(args).call("GET", f"/admin/v1/client/access-log?since={_since(args.since)}")
    emit(args, log, render_access_log(log))
    return 0


def render_access_log(log: dict[str, Any]) -> str:
    lines = ["Wie keek naar mijn gegevens (nieuwste eerst)"]
    for e in log["entries"]:
        lines.append(f"  {e['at'][:19].replace('T', ' ')}  {e['bron']:22} {e['wie']}: "
                     f"{e['event']} — {RESULTS.get(e['result'], e['result'])}{', regel ' + e['rule'] if e['rule'] else ''}")
    if not log["entries"]:
        lines.append("  (niemand)")
    for source in log["asked"]:
        if not source["answered"]:
            lines.append(f"  let op: {source['organisation']}: {source['error']}")
    return "\n".join(lines)


def follow(args: argparse.Namespace) -> int:
    result = admin(args).call("POST", "/admin/v1/client/follow", {})
    emit(args, result, "\n".join(f"{s['organisation']}: " + (f"volgt {len(s['events'])} soort(en) wijzigingen"
                                                             if "error" not in s else f"niet gelukt: {s['error']}")
                                 for s in result["sources"]) or "geen bronnen gevonden")
    return 0


def consent_grant(args: argparse.Namespace) -> int:
    body = {"to": args.to, "templates": args.templates, "purpose": args.purpose, "until": args.until,
            "sources": args.source}
    result = admin(args).call("POST", "/admin/v1/client/consents", body)
    emit(args, result, f"toestemming {result['id']} gegeven aan {args.to}"
                       + ("" if result["handed_over"] else f"; nog niet afgegeven: {result['error']}"))
    return 0


def consent_revoke(args: argparse.Namespace) -> int:
    result = admin(args).call("POST", f"/admin/v1/client/consents/{args.id}/revoke", {})
    emit(args, result, f"toestemming {result['id']} ingetrokken; elke genoemde bron krijgt bericht")
    return 0


def consent_list(args: argparse.Namespace) -> int:
    result = admin(args).call("GET", "/admin/v1/client/consents")
    emit(args, result, "\n".join(
        f"{c['id']} aan {', '.join(f'{k} {v}' for k, v in c['aan'].items())}: {', '.join(c['templates'])} "
        f"bij {', '.join(c['bronnen'])} voor '{c['doel']}' tot {c['geldig_tot']}"
        + (" (ingetrokken)" if c["ingetrokken"] else "") for c in result["consents"]) or "(geen toestemmingen)")
    return 0


def register(sub: Any) -> None:
    client = sub.add_parser("client", help="a client's own node: his data everywhere, who looked at it")
    group = client.add_subparsers(dest="client_command", required=True)
    p = command(group, "overview", overview, "his data from every source, in one view")
    personal_data_option(p)
    command(group, "follow", follow, "subscribe at every source to changes of his own records")
    p = command(group, "access-log", access_log, "who looked at his data, at every source")
    p.add_argument("--since", metavar="YYYY-MM-DD")

    consent = sub.add_parser("consent", help="a client's consents: give, withdraw, list")
    group = consent.add_subparsers(dest="consent_command", required=True)
    p = command(group, "grant", consent_grant, "consent to a party reading named data at named sources")
    p.add_argument("--to", required=True, help="agb:…, uzovi:…, kvk:… or a did")
    p.add_argument("--templates", required=True, nargs="+", metavar="TEMPLATE")
    p.add_argument("--purpose", required=True)
    p.add_argument("--until", required=True, metavar="YYYY-MM-DD")
    p.add_argument("--source", required=True, action="append", metavar="ID", help="kvk:…, uzovi:…, agb:… (repeat)")
    p = command(group, "revoke", consent_revoke, "withdraw a consent at every source it names")
    p.add_argument("id")
    command(group, "list", consent_list, "the consents given and withdrawn")


__all__ = ["register", "render_overview", "render_access_log"]
