"""Key files: a private seed on disk, mode 0600, refused when others may read it.

These two functions are the only file I/O in ``keys``.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Final

from keys.errors import InsecureKeyFile, MalformedKey
from keys.identity import SEED_SIZE, Identity

_HEADER: Final = "iwlz-ed25519-seed-v1"


def write_identity(path: Path, identity: Identity) -> None:
    """Create ``path`` (mode 0600) holding the identity's seed; never overwrite."""
    text = f"{_HEADER}\n{base64.b64encode(identity.seed()).decode('ascii')}\n{identity.did}\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise MalformedKey(f"key file {path} already exists") from exc
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)


def read_identity(path: Path) -> Identity:
    """Load an identity, refusing files that group or others may read."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as exc:
        raise MalformedKey(f"key file {path} does not exist") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InsecureKeyFile(
            f"key file {path} is accessible by group or others (mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}"
        )
    lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    if len(lines) < 2 or lines[0] != _HEADER:
        raise MalformedKey(f"key file {path} is not an iwlz key file")
    try:
        seed = base64.b64decode(lines[1], validate=True)
    except ValueError as exc:
        raise MalformedKey(f"key file {path} is damaged") from exc
    if len(seed) != SEED_SIZE:
        raise MalformedKey(f"key file {path} is damaged")
    return Identity.from_seed(seed)


__all__ = ["write_identity", "read_identity"]
