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

from dataclasses import dataclass

from node.store.database import Statement, Store

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
    def __init__(self, store: Store) -> None:
        self.store = store

    async def known(self, authority: str, subject: str) -> list[Link]:
        rows = await self.store.fetchall(
            f"SELECT {', '.join(_COLUMNS)} FROM authority_links WHERE authority = ? AND subject = ?", (authority, subject))
        return [Link(str(r[0]), str(r[1]), str(r[2]), r[3], int(r[4]), str(r[5]), str(r[6]), bytes(r[7])) for r in rows]

    async def parties(self, authority: str, subject: str) -> set[str]:
        """Every party that held or was handed authority over ``subject``."""
        links = await self.known(authority, subject)
        return {link.holder for link in links} | {link.target for link in links if link.target}

    @staticmethod
    def remember(authority: str, links: list[Link]) -> list[Statement]:
        """Statements that keep ``links``; a stored link is replaced only by a newer version of its record."""
        if not links:
            return []
        sql = (f"INSERT INTO authority_links (authority, {', '.join(_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
               "ON CONFLICT (authority, subject, record) DO UPDATE SET holder = excluded.holder, target = excluded.target, "
               "version = excluded.version, ord = excluded.ord, signer = excluded.signer, signer_cert = excluded.signer_cert "
               "WHERE excluded.version > authority_links.version "
               "OR (excluded.version = authority_links.version AND excluded.signer_cert != authority_links.signer_cert)")
        rows = [(authority, link.subject, link.record, link.holder, link.target, link.version, link.order, link.signer,
                 link.signer_cert) for link in links]
        return [(sql, rows, True)]


__all__ = ["Link", "AuthorityLinks"]
