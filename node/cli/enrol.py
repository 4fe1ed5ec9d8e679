"""Self-enrolment for test networks: iwlz network enroll-token, iwlz enroll serve (and iwlz run --enroll, in run)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

from keys import ROLES
from keys.enrolment import token_text
from node.cli.common import until_stopped, command, emit, now, utc
from node.home import NetworkDir, parse_duration

_IDENTIFIERS = ("kvk", "uzovi", "agb")


def enroll_token(args: argparse.Namespace) -> int:
    identifiers = {k: getattr(args, k) for k in _IDENTIFIERS if getattr(args, k)}
    seconds = parse_duration(args.valid_for)
    data = NetworkDir(Path(args.dir)).enrolment_token(role=args.role, reusable=args.reusable, seconds=seconds,
                                                       identifiers=identifiers or None, now=now())
    text = token_text(data)
    if args.out:
        out = Path(args.out)
        out.write_text(text + "\n", encoding="ascii")
        out.chmod(0o600)
    expires = utc(now() + seconds)
    emit(args, {"token": text if not args.out else None, "file": args.out, "role": args.role,
                "reusable": args.reusable, "bound_to": identifiers, "expires": expires},
         (f"token written to {args.out}" if args.out else text)
         + f"\n({'reusable' if args.reusable else 'single-use'} {args.role} token"
         + (f" for {', '.join(f'{k} {v}' for k, v in identifiers.items())}" if identifiers else "")
         + f", valid until {expires}; anyone holding it can join the network: keep it as a secret)")
    return 0


def enroll_serve(args: argparse.Namespace) -> int:
    # Loaded here, not with the CLI: the service brings aiohttp, which every other command would pay for.
    from node.enrol.authority import DEFAULT_VALIDITY, EnrolmentAuthority
    from node.enrol.service import EnrolmentService, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    validity = parse_duration(args.valid_for) if args.valid_for else DEFAULT_VALIDITY
    authority = EnrolmentAuthority(NetworkDir(Path(args.network)), validity=validity)
    service = EnrolmentService(authority, push=args.push)

    async def main() -> None:
        listener, port = await serve(service, args.host, args.port)
        print(f"ready http://{args.host}:{port} enrolment for root {authority.root}", flush=True)
        await until_stopped()
        await listener.stop()

    asyncio.run(main())
    return 0


def register_token(network: Any) -> None:
    p = command(network, "enroll-token", enroll_token, "a join token for the enrolment service (test networks)",
                home=False)
    p.add_argument("dir")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--reusable", action="store_true", help="many nodes may use it (default: single-use)")
    p.add_argument("--valid-for", default="7d", metavar="DURATION", help="e.g. 12h, 7d (default 7d)")
    for name in _IDENTIFIERS:
        p.add_argument(f"--{name}", help=f"bind the token to this {name.upper()} (one party, which may enrol again)")
    p.add_argument("--out", metavar="FILE", help="write the token to FILE (0600) instead of printing it")


def register(sub: Any) -> None:
    enroll = sub.add_parser("enroll", help="the enrolment service of a test network").add_subparsers(
        dest="enroll_command", required=True)
    p = command(enroll, "serve", enroll_serve, "certify nodes that present a join token (holds the root key)",
                home=False)
    p.add_argument("--network", required=True, help="the network directory (its root.key signs the certificates)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8790)
    p.add_argument("--valid-for", metavar="DURATION", help="certificates it issues (default 30d)")
    p.add_argument("--push", action="append", metavar="URL",
                   help="a bootstrap node that gets each new revocation list at once (repeat)")


__all__ = ["register", "register_token"]
