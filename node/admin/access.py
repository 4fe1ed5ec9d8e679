"""Who may do what through the admin API: named users with a role, and the node's own token.

Every call carries a bearer token: a named user's (``iwlz user add``), or the
home's ``admin.token``, which acts as the node itself (for automation and for
setting up users; people get a name of their own, so that the audit log says
who looked). Each route needs one permission; a role has the permissions in
PERMISSIONS (docs/OPERATIONS.md shows the table).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from node.store import Actor, User

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

USER: Final = web.RequestKey("user", User)  # who made the request, set by the admin API's authentication
NODE_USER: Final = User("admin.token", "node")  # the node's own token: every permission, acting as the node
PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    # node information, peers, notifications and meldingen (ids and states, no record content)
    "view": frozenset({"node", "beheerder", "medewerker", "auditor"}),
    # records: read the own registers, export, ask peers, a client's own overview
    "read": frozenset({"node", "beheerder", "medewerker"}),
    # records: write, import, delete; meldingen, subscriptions, consents
    "write": frozenset({"node", "beheerder", "medewerker"}),
    # the audit log and its checks
    "audit": frozenset({"node", "beheerder", "auditor"}),
    # running the node: users, backup, purge, retries, revocations, certificates, peers
    "operate": frozenset({"node", "beheerder"}),
}
EXPLAINED: Final = {"view": "see the node's state", "read": "read records", "write": "change records",
                    "audit": "read the audit log", "operate": "run the node"}


def identify(request: web.Request, node_token: bytes, by_token: Callable[[str], User | None]) -> User | None:
    """The user a request's bearer token names, or None."""
    offered = request.headers.get("Authorization", "")
    # Header bytes that are not UTF-8 arrive as surrogates: compare them as the bytes they were.
    raw = offered.encode("utf-8", "surrogateescape")
    if hmac.compare_digest(raw, b"Bearer " + node_token):
        return NODE_USER
    if offered.startswith("Bearer "):
        return by_token(offered[7:])
    return None


def user_of(request: web.Request) -> User:
    return request[USER]


def acting(request: web.Request, node: Actor) -> Actor:
    """Who acts, for the audit log: the node itself, or a person of its organisation in his role."""
    user = user_of(request)
    if user is NODE_USER:
        return node
    return Actor(node.did, user.role, node.organisation, user=user.name)


def guarded(permission: str, handler: Handler) -> Handler:
    allowed = PERMISSIONS[permission]

    async def checked(request: web.Request) -> web.StreamResponse:
        user = user_of(request)
        if user.role not in allowed:
            return web.json_response({"error": "forbidden", "reason": f"a {user.role} may not {EXPLAINED[permission]} "
                                      f"({request.method} {request.path})"}, status=403)
        return await handler(request)

    return checked


__all__ = ["PERMISSIONS", "NODE_USER", "USER", "identify", "acting", "guarded", "user_of"]
