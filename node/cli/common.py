"""What every command group shares: printing for people or scripts, times, the admin API client."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from node.admin.client import AdminClient
from node.errors import shown as escaped
from node.home import NodeConfig, NodeHome

Handler = Callable[[argparse.Namespace], int]


def now() -> int:
    return int(time.time())


def emit(args: argparse.Namespace, value: Any, text: str) -> None:
    """Print ``value`` as JSON (--json: which escapes every control character) or ``text`` for a person."""
    if getattr(args, "json", False):
        print(json.dumps(value, indent=2, sort_keys=True))
    else:
        # What a peer sent (a record's field, an access-log entry) is in it: an escape sequence or a bidi override
        # would act on the terminal. Line breaks and tabs are the command's own layout.
        print(escaped(text, limit=None, keep="\n\t"))


def utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def admin(args: argparse.Namespace) -> AdminClient:
    return AdminClient(NodeHome(Path(args.home)))


def command(sub: Any, name: str, handler: Handler, help: str | None = None, *, home: bool = True) -> argparse.ArgumentParser:
    """A subcommand that runs ``handler``; most take the node home first. ``--json`` works before or after it."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help)
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print machine-readable JSON")
    if home:
        parser.add_argument("home")
    parser.set_defaults(handler=handler)
    return parser


def tls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls-cert", metavar="PEM", help="certificate chain: the peer listener speaks https")
    parser.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    parser.add_argument("--tls-ca", metavar="PEM", help="a CA to trust for https peers, beside the system's")


async def until_stopped() -> None:
    """Wait for SIGINT or SIGTERM: how a long-running command (run, enroll serve) is told to stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def apply_tls(args: argparse.Namespace, config: NodeConfig) -> bool:
    """Take the TLS options given into ``config`` (as absolute paths); whether any was given."""
    given = False
    for name in ("tls_cert", "tls_key", "tls_ca"):
        if getattr(args, name, None):
            setattr(config, name, str(Path(getattr(args, name)).resolve()))
            given = True
    return given


def personal_data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--show-personal-data", action="store_true",
                        help="show BSNs, names and birth dates (masked otherwise)")


def shown(args: argparse.Namespace, record: Any) -> Any:
    """A record as this command may print it: personal data masked unless asked for."""
    if getattr(args, "show_personal_data", False):
        return record
    from node.store.records import masked  # loaded only by the commands that print records

    return masked(record)


__all__ = ["Handler", "until_stopped", "now", "emit", "utc", "admin", "command", "personal_data_option", "shown"]
