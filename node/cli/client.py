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
        lines.append(f"  {care['aanbieder']}: {care['status']}" if care else "  nog geen zorg geregistreerd")
    if view.get("eigen_bijdrage"):
        lines.append("\nEigen bijdrage")
        lines.extend(f"  {e.get('bron')}: {e.get('bedragPerMaand', '?')} per maand vanaf {e.get('ingangsdatum', '?')}"
                     for e in view["eigen_bijdrage"])
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
        lines.append(f"  {e['at'][:19].replace('T', ' ')}  {e['bron']:22} {e['actor_org']} ({e['actor_role']}): "
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


def register(sub: Any) -> None:
    client = sub.add_parser("client", help="a client's own node: his data everywhere, who looked at it")
    group = client.add_subparsers(dest="client_command", required=True)
    p = command(group, "overview", overview, "his data from every source, in one view")
    personal_data_option(p)
    command(group, "follow", follow, "subscribe at every source to changes of his own records")
    p = command(group, "access-log", access_log, "who looked at his data, at every source")
    p.add_argument("--since", metavar="YYYY-MM-DD")


__all__ = ["register", "render_overview", "render_access_log"]
