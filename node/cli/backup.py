"""Commands for keeping a node's data safe: backup (while it runs) and restore (checked before anything changes)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from node.cli.common import command, emit
from node.home import NodeHome


def backup(args: argparse.Namespace) -> int:
    from node.backup import create

    manifest = create(NodeHome(Path(args.home)), Path(args.file))
    records = ", ".join(f"{n} {kind}" for kind, n in sorted(manifest["records"].items())) or "no records"
    emit(args, manifest, f"backup written to {args.file}: {records}; audit log up to entry {manifest['audit_head']['seq']}; "
                         "signed with the node's key and sealed under a key derived from it (node.key is not in it: "
                         "keep it apart; without it the backup can be neither read nor restored)")
    return 0


def restore(args: argparse.Namespace) -> int:
    from node.backup import restore as restore_backup

    manifest = restore_backup(Path(args.file), Path(args.home), key=Path(args.key) if args.key else None)
    emit(args, manifest, f"restored {args.file} into {args.home}: checked the signature, every file and the audit chain "
                         f"(up to entry {manifest['audit_head']['seq']}); the database it replaced is kept beside it")
    return 0


def register(sub: Any) -> None:
    p = command(sub, "backup", backup, "a consistent copy of the node's data, also while it runs")
    p.add_argument("file")
    p = command(sub, "restore", restore, "restore a backup into the node's home (the node stopped), after checking it",
                home=False)
    p.add_argument("file")
    p.add_argument("home")
    p.add_argument("--key", help="the node's node.key, when the home to restore into does not hold it yet")


__all__ = ["register"]
