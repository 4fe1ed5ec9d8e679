"""Commands for the network root and membership: network init, init, cert issue/show/revoke."""

from __future__ import annotations

import argparse
import base64
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from keys import ROLES
from node.admin.client import AdminClient
from node.cli import enrol
from node.cli.common import apply_tls, command, emit, now, tls_arguments, utc
from node.errors import NetworkError, UsageError
from node.home import NetworkDir, NodeHome, parse_duration
from node.tls import client_context, server_context


def network_init(args: argparse.Namespace) -> int:
    net = NetworkDir.create(Path(args.dir), args.name)
    emit(args, {"root": net.root_did(), "dir": str(net.path)}, f"network root {net.root_did()}\nkeep {net.key_path} offline")
    return 0


def init(args: argparse.Namespace) -> int:
    identifiers = {k: getattr(args, k) for k in ("kvk", "uzovi", "agb", "bsn") if getattr(args, k)}
    if args.vestiging and (args.role != "zorgaanbieder" or not args.agb):
        raise UsageError("--vestiging is for a zorgaanbieder, beside its main --agb")
    home = NodeHome.create(Path(args.home), role=args.role, name=args.name, identifiers=identifiers, region=args.region)
    config = home.config()
    config.vestigingen = list(args.vestiging or [])
    config.port = args.port if args.port is not None else config.port
    config.host = args.host or config.host
    config.public_url = args.public_url or config.public_url
    if apply_tls(args, config):
        server_context(home.path, config.tls_cert, config.tls_key)  # a wrong pair is refused now, not at start
        client_context(home.path, config.tls_ca)
    home.save_config(config)
    did = home.identity().did
    emit(args, {"did": did, "home": str(home.path)}, did)
    return 0


def cert_issue(args: argparse.Namespace) -> int:
    home = NodeHome(Path(args.home))
    if args.days is not None and args.valid_for is not None:
        raise UsageError("give --valid-for or --days, not both")
    valid_for = parse_duration(args.valid_for) if args.valid_for else None
    if args.days is not None and args.days <= 0:
        raise UsageError("--days must be at least 1 (use --valid-for for shorter certificates)")
    member = NetworkDir(Path(args.network)).issue(home, now=now(), days=args.days, valid_for=valid_for)
    switched = _reload_if_running(home)
    emit(args, {"cert_id": member.cert_id_hex, "did": member.did, "expires": member.expires, "running_node_switched": switched},
         f"issued certificate {member.cert_id_hex} for {member.organisation} ({member.role}), valid until {utc(member.expires)}"
         + ("; the running node switched to it" if switched else ""))
    return 0


def _reload_if_running(home: NodeHome) -> bool:
    if not (home.path / "run.json").exists():
        return False
    return bool(AdminClient(home).call("POST", "/admin/v1/certificate/reload", {})["switched"])


def key_rotate(args: argparse.Namespace) -> int:
    identity = NodeHome(Path(args.home)).rotate_key()
    emit(args, {"next_did": identity.did},
         f"new key {identity.did}\nthe network root now issues its certificate: iwlz cert issue --network DIR {args.home}\n"
         "a running node switches to it without a restart; the old key is then removed")
    return 0


def member_summary(member: Any) -> dict[str, Any]:
    return {
        "cert_id": member.cert_id_hex,
        "did": member.did,
        "organisation": member.organisation,
        "role": member.role,
        "identifiers": dict(member.identifiers),
        "bound_to_bsn": member.bsn_commitment is not None,
        # argon2id: issued before keyed commitments, a BSN can be tested against it; issue it again
        "bsn_commitment": member.bsn_commitment.alg if member.bsn_commitment is not None else None,
        "region": member.region,
        "issuer": member.issuer,
        "not_before": utc(member.not_before),
        "expires": utc(member.expires),
    }


def cert_show(args: argparse.Namespace) -> int:
    home = NodeHome(Path(args.home))
    summary = member_summary(home.member())
    trust = home.trust_store()
    summary["revoked"] = trust.is_revoked(bytes.fromhex(summary["cert_id"]))
    emit(args, summary, "\n".join(f"{k:13} {v}" for k, v in summary.items()))
    return 0


def cert_revoke(args: argparse.Namespace) -> int:
    net = NetworkDir(Path(args.network))
    version, data = net.revoke(args.cert_id, now=now())
    handed = [hand_to_home(Path(home_path), data) for home_path in args.install or ()]
    pushed = [push_revocation_list(url, data) for url in args.push or ()]
    emit(args, {"version": version, "revoked": args.cert_id, "list": str(net.revocation_path), "installed": handed,
                "pushed": pushed},
         "\n".join([f"revocation list version {version} written to {net.revocation_path}"]
                   + [f"installed in {h['home']}{' (the running node adopted it)' if h['running'] else ''}" for h in handed]
                   + [f"pushed to {p['url']}: {'adopted' if p['adopted'] else 'already known there'}" for p in pushed]))
    return 0


def hand_to_home(path: Path, data: bytes) -> dict[str, Any]:
    """Keep the list in a node home and, when that node runs, hand it over through its admin API."""
    home = NodeHome(path)
    home.store_revocation_list(data)
    if not (home.path / "run.json").exists():
        return {"home": str(path), "running": False}
    result = AdminClient(home).call("POST", "/admin/v1/revocations", {"list": base64.b64encode(data).decode()})
    return {"home": str(path), "running": True, "adopted": bool(result["adopted"])}


def push_revocation_list(url: str, data: bytes) -> dict[str, Any]:
    """Send the signed list to a running node's peer endpoint; it adopts it and hands it on to the network."""
    target = url.rstrip("/") + "/iwlz/v1/revocations"
    request = urllib.request.Request(target, data=data, method="POST", headers={"Content-Type": "application/cose"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return {"url": url, "adopted": bool(json.loads(response.read())["adopted"])}
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        raise NetworkError(f"cannot push the revocation list to {url}: {exc.__class__.__name__}") from exc


def register(sub: Any) -> None:
    network = sub.add_parser("network", help="manage a network root").add_subparsers(dest="network_command", required=True)
    p = command(network, "init", network_init, "create a network root (keep its key offline)", home=False)
    p.add_argument("dir")
    p.add_argument("--name", default="iwlz")
    enrol.register_token(network)

    p = command(sub, "init", init, "create a node: key, config and admin token")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--name", help="organisation name (not for a client: his node names no one)")
    p.add_argument("--kvk")
    p.add_argument("--uzovi")
    p.add_argument("--agb")
    p.add_argument("--vestiging", action="append", metavar="AGB",
                   help="a further AGB code of the same zorgaanbieder (repeat for each vestiging)")
    p.add_argument("--bsn", help="for a client node: the client's own BSN")
    p.add_argument("--region", help="UZOVI of the zorgkantoor region (providers, clients)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--public-url")
    tls_arguments(p)

    cert = sub.add_parser("cert", help="membership certificates").add_subparsers(dest="cert_command", required=True)
    p = command(cert, "issue", cert_issue, "the network root signs a node's certificate")
    p.add_argument("--network", required=True)
    p.add_argument("--valid-for", metavar="DURATION", help="e.g. 30s, 12h, 90d, 5y (default 365d)")
    p.add_argument("--days", type=int, help="whole days (older form of --valid-for)")
    command(cert, "show", cert_show, "show a node's certificate")
    p = command(cert, "revoke", cert_revoke, "sign a new revocation list version", home=False)
    p.add_argument("--network", required=True)
    p.add_argument("--install", action="append", metavar="HOME",
                   help="also hand the list to this node home (and to its node, if it runs)")
    p.add_argument("--push", action="append", metavar="URL",
                   help="send the list to the running node at this peer URL, which hands it on to the network")
    p.add_argument("cert_id", nargs="+")

    key = sub.add_parser("key", help="the node's key").add_subparsers(dest="key_command", required=True)
    command(key, "rotate", key_rotate, "make a new key; the node switches once the root certifies it")


__all__ = ["register", "member_summary"]
