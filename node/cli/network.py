"""Commands for the network root and membership: network init, init, cert issue/show/revoke."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from keys import ROLES
from node.cli.common import command, emit, now, utc
from node.home import NetworkDir, NodeHome


def network_init(args: argparse.Namespace) -> int:
    net = NetworkDir.create(Path(args.dir), args.name)
    emit(args, {"root": net.root_did(), "dir": str(net.path)}, f"network root {net.root_did()}\nkeep {net.key_path} offline")
    return 0


def init(args: argparse.Namespace) -> int:
    identifiers = {k: getattr(args, k) for k in ("kvk", "uzovi", "agb", "bsn") if getattr(args, k)}
    home = NodeHome.create(Path(args.home), role=args.role, name=args.name, identifiers=identifiers, region=args.region)
    config = home.config()
    if args.port is not None or args.host is not None or args.public_url is not None:
        config.port = args.port if args.port is not None else config.port
        config.host = args.host or config.host
        config.public_url = args.public_url or config.public_url
        home.save_config(config)
    did = home.identity().did
    emit(args, {"did": did, "home": str(home.path)}, did)
    return 0


def cert_issue(args: argparse.Namespace) -> int:
    member = NetworkDir(Path(args.network)).issue(NodeHome(Path(args.home)), now=now(), days=args.days)
    emit(args, {"cert_id": member.cert_id_hex, "did": member.did, "expires": member.expires},
         f"issued certificate {member.cert_id_hex} for {member.organisation} ({member.role}), valid until {utc(member.expires)}")
    return 0


def member_summary(member: Any) -> dict[str, Any]:
    return {
        "cert_id": member.cert_id_hex,
        "did": member.did,
        "organisation": member.organisation,
        "role": member.role,
        "identifiers": dict(member.identifiers),
        "bound_to_bsn": member.bsn_commitment is not None,
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
    for home_path in args.install or ():
        NodeHome(Path(home_path)).store_revocation_list(data)
    emit(args, {"version": version, "revoked": args.cert_id, "list": str(net.revocation_path)},
         f"revocation list version {version} written to {net.revocation_path}")
    return 0


def register(sub: Any) -> None:
    network = sub.add_parser("network", help="manage a network root").add_subparsers(dest="network_command", required=True)
    p = command(network, "init", network_init, "create a network root (keep its key offline)", home=False)
    p.add_argument("dir")
    p.add_argument("--name", default="iwlz")

    p = command(sub, "init", init, "create a node: key, config and admin token")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--name", required=True, help="organisation name")
    p.add_argument("--kvk")
    p.add_argument("--uzovi")
    p.add_argument("--agb")
    p.add_argument("--bsn", help="for a client node: the client's own BSN")
    p.add_argument("--region", help="UZOVI of the zorgkantoor region (providers, clients)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--public-url")

    cert = sub.add_parser("cert", help="membership certificates").add_subparsers(dest="cert_command", required=True)
    p = command(cert, "issue", cert_issue, "the network root signs a node's certificate")
    p.add_argument("--network", required=True)
    p.add_argument("--days", type=int, default=365)
    command(cert, "show", cert_show, "show a node's certificate")
    p = command(cert, "revoke", cert_revoke, "sign a new revocation list version", home=False)
    p.add_argument("--network", required=True)
    p.add_argument("--install", action="append", metavar="HOME", help="also hand the list to this node home")
    p.add_argument("cert_id", nargs="+")


__all__ = ["register", "member_summary"]
