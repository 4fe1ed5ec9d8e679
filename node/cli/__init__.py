"""The ``iwlz`` command: one console script for everything a participant does, one module per command group.

``main(argv) -> int`` never lets a traceback reach the user for a user error:
NodeError and its kin become one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from node.cli import backup, client, enrol, network, notify, records, run, show, transfer, users
from node.errors import NodeError

GROUPS = (network, enrol, run, records, transfer, backup, show, notify, client, users)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="iwlz", description="A node of the decentralised iWlz network.")
    top.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except NodeError as exc:
        print(f"iwlz: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (iwlz ... | head): end quietly, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


__all__ = ["main", "parser"]
