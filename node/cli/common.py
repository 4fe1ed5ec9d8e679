"""What every command group shares: printing for people or scripts, times, the admin API client."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from node.admin.client import AdminClient
from node.home import NodeHome

Handler = Callable[[argparse.Namespace], int]


def now() -> int:
    return int(time.time())


def emit(args: argparse.Namespace, value: Any, text: str) -> None:
    print(json.dumps(value, indent=2, sort_keys=True) if getattr(args, "json", False) else text)


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


def personal_data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--show-personal-data", action="store_true",
                        help="show BSNs, names and birth dates (masked otherwise)")


def shown(args: argparse.Namespace, record: Any) -> Any:
    """A record as this command may print it: personal data masked unless asked for."""
    if getattr(args, "show_personal_data", False):
        return record
    from node.store.records import masked  # loaded only by the commands that print records

    return masked(record)


__all__ = ["Handler", "now", "emit", "utc", "admin", "command", "personal_data_option", "shown"]
