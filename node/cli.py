"""The ``iwlz`` command: one console script for everything a participant does.

``main(argv) -> int`` never lets a traceback reach the user for a user error:
NodeError and its kin become one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from keys import ROLES
from node.errors import NodeError
from node.home import NetworkDir, NodeHome

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Handler] = {}


def command(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _COMMANDS[name] = fn
        return fn

    return register


def now() -> int:
    return int(time.time())


def emit(args: argparse.Namespace, value: Any, text: str) -> None:
    print(json.dumps(value, indent=2, sort_keys=True) if getattr(args, "json", False) else text)


def _utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- network root and certificates -------------------------------------------


@command("network-init")
def _network_init(args: argparse.Namespace) -> int:
    net = NetworkDir.create(Path(args.dir), args.name)
    emit(args, {"root": net.root_did(), "dir": str(net.path)}, f"network root {net.root_did()}\nkeep {net.key_path} offline")
    return 0


@command("init")
def _init(args: argparse.Namespace) -> int:
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


@command("cert-issue")
def _cert_issue(args: argparse.Namespace) -> int:
    member = NetworkDir(Path(args.network)).issue(NodeHome(Path(args.home)), now=now(), days=args.days)
    emit(args, {"cert_id": member.cert_id_hex, "did": member.did, "expires": member.expires},
         f"issued certificate {member.cert_id_hex} for {member.organisation} ({member.role}), valid until {_utc(member.expires)}")
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
        "not_before": _utc(member.not_before),
        "expires": _utc(member.expires),
    }


@command("cert-show")
def _cert_show(args: argparse.Namespace) -> int:
    home = NodeHome(Path(args.home))
    summary = member_summary(home.member())
    trust = home.trust_store()
    summary["revoked"] = trust.is_revoked(bytes.fromhex(summary["cert_id"]))
    emit(args, summary, "\n".join(f"{k:13} {v}" for k, v in summary.items()))
    return 0


@command("cert-revoke")
def _cert_revoke(args: argparse.Namespace) -> int:
    net = NetworkDir(Path(args.network))
    version, data = net.revoke(args.cert_id, now=now())
    for home_path in args.install or ():
        NodeHome(Path(home_path)).store_revocation_list(data)
    emit(args, {"version": version, "revoked": args.cert_id, "list": str(net.revocation_path)},
         f"revocation list version {version} written to {net.revocation_path}")
    return 0


# -- argument parsing ---------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iwlz", description="A node of the decentralised iWlz network.")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    network = sub.add_parser("network", help="manage a network root").add_subparsers(dest="network_command", required=True)
    p = network.add_parser("init", help="create a network root (keep its key offline)")
    p.add_argument("dir")
    p.add_argument("--name", default="iwlz")
    p.set_defaults(handler="network-init")

    p = sub.add_parser("init", help="create a node: key, config and admin token")
    p.add_argument("home")
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
    p.set_defaults(handler="init")

    cert = sub.add_parser("cert", help="membership certificates").add_subparsers(dest="cert_command", required=True)
    p = cert.add_parser("issue", help="the network root signs a node's certificate")
    p.add_argument("--network", required=True)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("home")
    p.set_defaults(handler="cert-issue")
    p = cert.add_parser("show", help="show a node's certificate")
    p.add_argument("home")
    p.set_defaults(handler="cert-show")
    p = cert.add_parser("revoke", help="sign a new revocation list version")
    p.add_argument("--network", required=True)
    p.add_argument("--install", action="append", metavar="HOME", help="also hand the list to this node home")
    p.add_argument("cert_id", nargs="+")
    p.set_defaults(handler="cert-revoke")

    for extend in _EXTENSIONS:
        extend(sub)
    return parser


_EXTENSIONS: list[Callable[[Any], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    import node.cli_node  # noqa: F401  (registers the node commands)

    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "json"):
        args.json = False
    try:
        return _COMMANDS[args.handler](args)
    except NodeError as exc:
        print(f"iwlz: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
