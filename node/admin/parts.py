"""What the admin API works with, and what its route groups share: who acts, reading JSON, answering errors."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar

from aiohttp import web

from node.admin.access import acting, guarded
from node.care.meldingen import MeldingDesk
from node.discovery import PeerTable, Router
from node.errors import ValidationError
from node.notify import Inbox, MeldingenSent, Outbox, Subscriptions
from node.overview import ClientView
from node.store import Actor, AuditLog, HeldEvidence, Registers, Statement, StoredVersion, Users


@dataclass(frozen=True)
class AdminParts:
    """What the admin API works with."""

    token: str
    describe: Callable[[], dict[str, Any]]  # did, role, organisation, url, templates
    own_bsn: str | None  # a client node's own BSN, the default for its access-log requests
    actor: Callable[[], Actor]  # this node's own actor (its did changes when its key does)
    clock: Callable[[], float]
    registers: Registers
    audit: AuditLog
    router: Router
    peers: PeerTable
    learn_from: Callable[[str], Awaitable[str | None]]
    outbox: Outbox
    inbox: Inbox
    subscriptions: Subscriptions
    meldingen_sent: MeldingenSent
    melding_desk: MeldingDesk
    purge: Callable[[date | None, bool, Actor], Awaitable[dict[str, Any]]]  # retention, or what it would remove
    adopt_revocation_list: Callable[[bytes], bool]
    reload_certificate: Callable[[], Awaitable[bool]]
    check_witnesses: Callable[[], Awaitable[tuple[bool, str]]]
    client_view: ClientView
    held: HeldEvidence
    users: Users


def error(status: int, name: str, reason: str, **extra: Any) -> web.Response:
    return web.json_response({"error": name, "reason": reason, **extra}, status=status)


# JSON may write any code unit as an escape, so "\ud800" parses to a string that holds no character and has no
# UTF-8: it cannot be stored (SQLite takes UTF-8), encoded to be signed (CBOR text is UTF-8) or sent, and taken in
# it failed far from the door, as an internal error. Only an escape in D800-DFFF can make one (UTF-8 has no bytes
# for it), so only a body that holds one is looked at again; a pair is one character, which json.loads joins.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


async def read_json(request: web.Request) -> Any:
    """The JSON value of the request's body; ValidationError when it is not JSON, or not Unicode."""
    body = await request.read()
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValidationError("request body is not JSON") from exc
    if _SURROGATE_ESCAPE.search(body):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValidationError("request body holds half of a surrogate pair (\\ud800-\\udfff): not Unicode") from exc
    return value


class RouteGroup:
    """A group of routes; each names the permission it needs (node/admin/access.py)."""

    # (method, path, permission, name of the handler method)
    ROUTES: ClassVar[tuple[tuple[str, str, str, str], ...]] = ()

    def __init__(self, parts: AdminParts) -> None:
        self.p = parts

    def add_to(self, app: web.Application) -> None:
        for method, path, permission, name in self.ROUTES:
            app.router.add_route(method, path, guarded(permission, getattr(self, name)))

    def now(self) -> int:
        return int(self.p.clock())

    def actor(self, request: web.Request) -> Actor:
        return acting(request, self.p.actor())

    def read_entries(self, request: web.Request, versions: list[StoredVersion], event: str) -> list[Statement]:
        """Audit entries for records shown to a person."""
        return self.p.audit.shown(versions, actor=self.actor(request), now=self.now(), event=event)

    async def audit_reads(self, request: web.Request, versions: list[StoredVersion], event: str) -> None:
        entries = self.read_entries(request, versions, event)
        if entries:
            await self.p.audit.store.write(entries)


__all__ = ["AdminParts", "RouteGroup", "error", "read_json"]
