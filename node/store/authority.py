"""What a source has learned, from verified evidence, about who holds authority over its records.

A link is one signed step of responsibility: the party that held it (and
signed the record) hands it to another, or keeps it. A source keeps the
links of every allowed decision, so that a later request is judged against
everything it has seen (a later Overdracht away from a requester ends that
requester's access), and so that changes reach every party that is, was or
becomes responsible. Links enter only through the policy decision point,
after their signatures, signers and content were checked; nothing a refused
request presented is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from node.store.database import Statement, Store
from node.store.kept import Kept

_INSERT = "INSERT INTO authority_links"
_COLUMNS = ("subject", "record", "holder", "target", "version", "ord", "signer", "signer_cert")


@dataclass(frozen=True, slots=True)
class Link:
    """``holder`` (who signed ``record``, version ``version``) hands authority over ``subject`` to ``target``,
    or keeps it (``target`` None); ``order`` (a date) places it in time."""

    subject: str
    record: str
    holder: str
    target: str | None
    version: int
    order: str
    signer: str
    signer_cert: bytes  # the certificate id it was signed under: a revoked one makes the step void


class AuthorityLinks:
    """``cache_size``: the links of that many subjects are kept in memory (a query reads them on every decision).
    In the process that commits every write the cache learns each committed change from the store, whoever wrote
    it (its own decisions, a worker's hand-over); a worker drops it whenever the owner's change count moves."""

    def __init__(self, store: Store, *, cache_size: int = 0, changes: Callable[[], int] | None = None) -> None:
        self.store = store
        # A worker reads the links the owner writes: it keeps them while the owner's change count stays put.
        self._kept: Kept[tuple[str, str], tuple[Link, ...]] = Kept(cache_size, changes)
        if cache_size and changes is None:
            store.observe(_INSERT, self._committed)

    async def known(self, authority: str, subject: str) -> list[Link]:
        key = (authority, subject)
        seen = self._kept.seen()
        found, kept = self._kept.get(key)
        if found and kept is not None:
            return list(kept)
        rows = await self.store.lookup(
            f"SELECT {', '.join(_COLUMNS)} FROM authority_links WHERE authority = ? AND subject = ?", (authority, subject))
        links = [Link(str(r[0]), str(r[1]), str(r[2]), r[3], int(r[4]), str(r[5]), str(r[6]), bytes(r[7])) for r in rows]
        self._kept.keep(key, tuple(links), seen)
        return links

    def _committed(self, statement: Statement) -> None:
        self._kept.changed()
        _, rows, _ = statement
        for row in rows:  # type: ignore[union-attr]
            self._kept.pop((row[0], row[1]))

    async def parties(self, authority: str, subject: str) -> set[str]:
        """Every party that held or was handed authority over ``subject``."""
        links = await self.known(authority, subject)
        return {link.holder for link in links} | {link.target for link in links if link.target}

    @staticmethod
    def remember(authority: str, links: list[Link]) -> list[Statement]:
        """Statements that keep ``links``; a stored link is replaced only by a newer version of its record."""
        if not links:
            return []
        sql = (f"{_INSERT} (authority, {', '.join(_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
               "ON CONFLICT (authority, subject, record) DO UPDATE SET holder = excluded.holder, target = excluded.target, "
               "version = excluded.version, ord = excluded.ord, signer = excluded.signer, signer_cert = excluded.signer_cert "
               "WHERE excluded.version > authority_links.version "
               "OR (excluded.version = authority_links.version AND excluded.signer_cert != authority_links.signer_cert)")
        rows = [(authority, link.subject, link.record, link.holder, link.target, link.version, link.order, link.signer,
                 link.signer_cert) for link in links]
        return [(sql, rows, True)]


__all__ = ["Link", "AuthorityLinks"]
