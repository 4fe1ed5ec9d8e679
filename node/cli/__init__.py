"""The ``iwlz`` command: one console script for everything a participant does, one module per command group.

``main(argv) -> int`` never lets a traceback reach the user for a user error:
NodeError and its kin become one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from node.cli import backup, client, enrol, network, notify, records, run, show, transfer, users
from node.errors import NodeError

GROUPS = (network, enrol, run, records, transfer, backup, show, notify, client, users)


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """Only the parser of the group that holds ``command`` (the same parser for it: building all of them took
    ~30 ms of CPU at every start, a node's included); every command's when none does (an unknown command's error
    lists them all)."""
    top = argparse.ArgumentParser(prog="iwlz", description="A node of the decentralised iWlz network.")
    top.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in [group for group in GROUPS if command in _names(group)] or GROUPS:
        group.register(sub)
    return top


class _Names:
    """Stands in for argparse while a group registers: keeps the command names, takes everything else."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def add_parser(self, name: str, *args: object, **kwargs: object) -> _Anything:
        self.names.append(name)
        return _Anything()


class _Anything:
    def __getattr__(self, name: str) -> Callable[..., _Anything]:
        return lambda *args, **kwargs: _Anything()


def _names(group: Any) -> list[str]:
    """The top-level commands ``group`` registers."""
    names = _Names()
    group.register(names)
    return names.names


def _command(argv: Sequence[str]) -> str | None:
    """The command named in ``argv``: its first word that is not an option (the top level's only is --json)."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser(_command(argv)).parse_args(argv)
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
