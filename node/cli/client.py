"""Commands for a client's own node: overview (his data from every source), access-log (who looked at it), his
consents and machtigingen; and, with --namens, the same for a client who gave this node's person a machtiging."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

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


def _namens(args: argparse.Namespace) -> dict[str, str]:
    return {"namens": args.namens} if getattr(args, "namens", None) else {}


def overview(args: argparse.Namespace) -> int:
    view = admin(args).call("GET", f"/admin/v1/client/overview?{urlencode({'seen': '1', **_namens(args)})}")
    emit(args, shown(args, view), render_overview(shown(args, view)))
    return 0


def render_overview(view: dict[str, Any]) -> str:
    acting = view.get("namens")
    lines = [f"Gegevens van de cliënt met BSN {acting['bsn']} bij alle bronnen (u bent zijn gemachtigde)"
             if acting else "Mijn gegevens bij alle bronnen"]
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
    if acting:
        changes = view["wijzigingen"]
        lines.append(f"\nWijzigingen in zijn gegevens die u volgt: {len(changes)}" if acting.get("volgt") else
                     f"\nU volgt de wijzigingen in zijn gegevens niet (iwlz client follow HOME --namens {acting['id']})")
        lines.extend(f"  {_time(c['at'])} {c['bron']}: {c['gebeurtenis']}" for c in changes)
        return "\n".join(lines)
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
    log = admin(args).call("GET", f"/admin/v1/client/access-log?{urlencode({'since': _since(args.since), **_namens(args)})}")
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
    result = admin(args).call("POST", "/admin/v1/client/follow", _namens(args))
    emit(args, result, "\n".join(f"{s['organisation']}: " + (f"volgt {len(s['events'])} soort(en) wijzigingen"
                                                             if "error" not in s else f"niet gelukt: {s['error']}")
                                 for s in result["sources"]) or "geen bronnen gevonden")
    return 0


def unfollow(args: argparse.Namespace) -> int:
    result = admin(args).call("POST", "/admin/v1/client/unfollow", _namens(args))
    emit(args, result, "\n".join(f"{s['organisation']}: " + ("volgt niet meer" if s["ended"] else
                                                             f"nog niet beëindigd ({s.get('error', '')}); opnieuw bij de volgende start")
                                 for s in result["sources"]) or "volgde nergens")
    return 0


def consent_grant(args: argparse.Namespace) -> int:
    body = {"to": args.to, "templates": args.templates, "purpose": args.purpose, "until": args.until,
            "sources": args.source}
    result = admin(args).call("POST", "/admin/v1/client/consents", body)
    emit(args, result, f"toestemming {result['id']} gegeven aan {args.to}"
                       + ("" if result["handed_over"] else f"; nog niet afgegeven ({result['error']}): uw node probeert het elk uur opnieuw"))
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


def machtiging_grant(args: argparse.Namespace) -> int:
    result = admin(args).call("POST", "/admin/v1/client/machtigingen",
                              {"to": args.to, "until": args.until, "endpoint": args.endpoint})
    emit(args, result, f"machtiging {result['id']} gegeven aan {args.to} tot en met {args.until}"
                       + ("" if result["handed_over"] else f"; nog niet afgegeven ({result['error']}): uw node probeert het elk uur opnieuw"))
    return 0


_STAAT = {"geldig": "", "ingetrokken": ": door hem ingetrokken (hier verwijderd)",
          "niet bevestigd": ": niet bevestigd (zijn node antwoordt niet)"}


def namens(args: argparse.Namespace) -> int:
    result = shown(args, admin(args).call("GET", "/admin/v1/client/namens"))
    node = result["deze_node"]
    lines = [f"{m['id']}: cliënt met BSN {m['bsn']}, tot en met {m['geldig_tot']}" + _STAAT[m["staat"]]
             for m in result["namens"]]
    emit(args, result, "\n".join((lines or ["(geen machtigingen ontvangen)"])
                                 + [f"Een cliënt machtigt u met: iwlz machtiging grant HOME --to {node['did']} "
                                    f"--endpoint {node['endpoint']} --until JJJJ-MM-DD"]))
    return 0


def _namens_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--namens", metavar="MACHTIGING-ID",
                        help="for the client who gave this node's person this machtiging (see: iwlz client namens)")


def register(sub: Any) -> None:
    client = sub.add_parser("client", help="a client's own node: his data everywhere, who looked at it")
    group = client.add_subparsers(dest="client_command", required=True)
    p = command(group, "overview", overview, "his data from every source, in one view")
    personal_data_option(p)
    _namens_option(p)
    p = command(group, "follow", follow, "subscribe at every source to changes of his own records")
    _namens_option(p)
    p = command(group, "unfollow", unfollow, "end those subscriptions: no more changes, not at the next start either")
    _namens_option(p)
    p = command(group, "access-log", access_log, "who looked at his data, at every source")
    p.add_argument("--since", metavar="YYYY-MM-DD")
    _namens_option(p)
    p = command(group, "namens", namens, "the clients who gave this node's person a machtiging")
    personal_data_option(p)

    machtiging = sub.add_parser("machtiging", help="a client's machtigingen: a person who sees what he sees, for him")
    group = machtiging.add_subparsers(dest="machtiging_command", required=True)
    p = command(group, "grant", machtiging_grant, "let a person (his own client's node) read his data and his "
                "access log at every source of his records")
    p.add_argument("--to", required=True, metavar="DID", help="the did of the gemachtigde's own node")
    p.add_argument("--endpoint", required=True, metavar="URL",
                   help="where his node is (iwlz client namens on his node prints both)")
    p.add_argument("--until", required=True, metavar="YYYY-MM-DD")
    p = command(group, "revoke", consent_revoke, "withdraw a machtiging at every source of his records")
    p.add_argument("id")

    consent = sub.add_parser("consent", help="a client's consents: give, withdraw, list")
    group = consent.add_subparsers(dest="consent_command", required=True)
    p = command(group, "grant", consent_grant, "consent to a party reading named data at named sources")
    p.add_argument("--to", required=True, help="agb:…, uzovi:…, kvk:… or a did")
    p.add_argument("--templates", required=True, nargs="+", metavar="TEMPLATE")
    p.add_argument("--purpose", required=True)
    p.add_argument("--until", required=True, metavar="YYYY-MM-DD")
    p.add_argument("--source", required=True, action="append", metavar="ID", help="kvk:…, uzovi:…, agb:… or the did of its node (repeat)")
    p = command(group, "revoke", consent_revoke, "withdraw a consent at every source it names")
    p.add_argument("id")
    command(group, "list", consent_list, "the consents given and withdrawn")


__all__ = ["register", "render_overview", "render_access_log"]
