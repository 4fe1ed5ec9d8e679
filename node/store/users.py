"""Named users of the admin API: a person with a role and a token of his own, kept hashed.

The token is shown once, when the user is added; the store keeps its
SHA-256 (a token is 256 random bits, so a slow hash would add nothing). A
revoked user keeps his name: names identify people in the audit log, so a
name is never given to someone else.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Final

from node.errors import ValidationError
from node.store.database import Statement, Store

ROLES: Final = ("beheerder", "medewerker", "auditor")
TOKEN_PREFIX: Final = "iwlz_"


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def _check_name(name: str) -> None:
    if not 1 <= len(name) <= 64 or not name.isprintable() or name != name.strip():
        raise ValidationError("a user name is 1 to 64 printable characters, without spaces around it")


class Users:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_digest: dict[bytes, User] = {}

    async def load(self) -> None:
        rows = await self.store.fetchall("SELECT name, role, token_hash FROM users WHERE revoked_at IS NULL")
        self._by_digest = {bytes(digest): User(name, role) for name, role, digest in rows}

    def by_token(self, token: str) -> User | None:
        return self._by_digest.get(_digest(token)) if token.startswith(TOKEN_PREFIX) else None

    async def add(self, name: str, role: str, *, now: int, also: tuple[Statement, ...] = ()) -> str:
        """Add a user (``also``: written in the same transaction, the audit entry); returns his token, shown this once."""
        _check_name(name)
        if role not in ROLES:
            raise ValidationError(f"role must be one of {', '.join(ROLES)}")
        if await self.store.fetchone("SELECT 1 FROM users WHERE name = ?", (name,)):
            raise ValidationError(f"there is already a user {name!r} (names are never reused; revoked ones included)")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        await self.store.write([("INSERT INTO users (name, role, token_hash, created_at) VALUES (?, ?, ?, ?)",
                                 (name, role, _digest(token), now), False), *also])
        self._by_digest[_digest(token)] = User(name, role)
        return token

    async def revoke(self, name: str, *, now: int, also: tuple[Statement, ...] = ()) -> None:
        row = await self.store.fetchone("SELECT token_hash FROM users WHERE name = ? AND revoked_at IS NULL", (name,))
        if row is None:
            raise ValidationError(f"no active user {name!r}")
        await self.store.write([("UPDATE users SET revoked_at = ? WHERE name = ?", (now, name), False), *also])
        self._by_digest.pop(bytes(row[0]), None)

    async def list(self) -> list[dict[str, Any]]:
        rows = await self.store.fetchall("SELECT name, role, created_at, revoked_at FROM users ORDER BY name")
        return [{"name": n, "role": r, "created_at": c, "revoked_at": v} for n, r, c, v in rows]


__all__ = ["Users", "User", "ROLES"]
