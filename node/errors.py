"""The error family of the node layer.

Library exceptions (sqlite3, aiohttp, OS errors) are translated into these at
the boundary of the module that called the library.
"""

from __future__ import annotations

import unicodedata


class NodeError(Exception):
    """Base of every error raised by ``node``; ``str()`` is fit for a user."""

    exit_code = 1


class UsageError(NodeError):
    """The user asked for something that cannot be done as asked."""

    exit_code = 2


class ConfigError(UsageError):
    """A node home or network directory is missing, damaged or incomplete."""


class StorageError(NodeError):
    """The SQLite store failed."""


class ReplayedElsewhere(StorageError):
    """The process that owns writes had already accepted this message id, from another worker."""


class NetworkError(NodeError):
    """A peer could not be reached or answered with something unusable."""


class PeerRefused(NetworkError):
    """A peer answered with a signed error. Its reason and rule are the peer's words: they are kept as this node may
    show and log them (``shown``), wherever the refusal came from (a reply, an answer in a batch)."""

    def __init__(self, code: str, reason: str, rule: str | None = None, *, note: str = "") -> None:
        reason, rule = shown(reason) + note, (shown(rule, 128) if rule is not None else None)  # note: this node's own
        super().__init__(f"peer refused ({code}{', rule ' + rule if rule else ''}): {reason}")
        self.code = code
        self.reason = reason
        self.rule = rule


class ValidationError(UsageError):
    """A record or request fails validation; ``str()`` never repeats personal data. ``field`` is the path of the
    field at fault (``client.bsn``, ``geindiceerdZorgzwaartepakket[0].zzpCode``), when one is."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.field = field


def shown(text: str, limit: int | None = 500, keep: str = "") -> str:
    """Words that came from outside (a peer's reason, a caller's field name) as this node may put them in its own
    messages and log lines: what could break a line or hide part of it (control and format characters, bidi
    overrides, line and paragraph separators, lone surrogates) written out as escapes, but for the characters in
    ``keep``, and at most ``limit`` characters."""
    head = text if limit is None else text[:limit]
    tail = "..." if limit is not None and len(text) > limit else ""
    if head.translate({ord(c): None for c in keep}).isprintable():
        return head + tail  # the usual case, at C speed (isprintable is False for all that is written out below)
    out = []
    for char in head:
        if char not in keep and (unicodedata.category(char)[0] == "C" or char in "\u2028\u2029"):
            code = ord(char)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out) + tail


__all__ = ["NodeError", "UsageError", "ConfigError", "StorageError", "ReplayedElsewhere", "NetworkError", "PeerRefused", "ValidationError", "shown"]
