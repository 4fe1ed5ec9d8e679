"""Shared builders for tests: a network root, member identities and endpoints."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from keys import CLIENT_ORGANISATION, Identity, TrustStore, issue_certificate
from protocol import Endpoint

NOW = 1_790_000_000  # 2026-09-21, a fixed "now" for sans-IO tests
YEAR = 365 * 24 * 3600

ROLE_IDENTIFIERS = {
    "ciz": ({"kvk": "62253778"}, None),
    "cak": ({"kvk": "27364237"}, None),
    "zorgkantoor": ({"uzovi": "5151"}, None),
    "zorgaanbieder": ({"agb": "12345678"}, "5151"),
    "client": ({"bsn": "106658037"}, "5151"),
}


BSN_KEY = bytes(range(32))  # the key a test client's node keeps for its BSN commitment


def seeded(n: int) -> Identity:
    return Identity.from_seed(bytes([n]) * 32)


@dataclass
class Network:
    root: Identity = field(default_factory=lambda: seeded(1))

    def trust(self) -> TrustStore:
        return TrustStore([self.root.did])

    def certificate(self, identity: Identity, role: str = "ciz", *, identifiers: dict[str, str] | None = None,
                    region: str | None = None, not_before: int = NOW - YEAR, expires: int = NOW + YEAR,
                    cert_id: bytes | None = None, organisation: str | None = None,
                    bsn_key: bytes | None = None) -> bytes:
        default_ids, default_region = ROLE_IDENTIFIERS[role]
        return issue_certificate(
            self.root,
            subject=identity.did,
            organisation=organisation or (CLIENT_ORGANISATION if role == "client" else f"Test {role}"),
            role=role,
            identifiers=identifiers or default_ids,
            region=region if region is not None else default_region,
            not_before=not_before,
            expires=expires,
            issued_at=not_before,
            cert_id=cert_id,
            bsn_key=(bsn_key or BSN_KEY) if role == "client" else None,
        )

    def endpoint(self, identity: Identity, role: str = "ciz", **kwargs: object) -> Endpoint:
        return Endpoint(identity, self.certificate(identity, role, **kwargs), self.trust())  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[str]:
    """``app`` listening on 127.0.0.1 at a free port; yields its base URL (no trailing slash)."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
