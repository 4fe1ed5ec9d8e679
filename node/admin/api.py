"""The local admin API: JSON over HTTP for the organisation's own systems, and the web dashboard.

Bound to 127.0.0.1 unless configured otherwise; every call needs the bearer
token from the node's home (admin.token). A wrong or missing token gets 401
and changes nothing.
"""

from __future__ import annotations

import hmac
import logging
from importlib import resources
from typing import Any

from aiohttp import web

from node.admin.meldingen import MeldingRoutes
from node.admin.routes import AdminParts, AdminRoutes, error
from node.errors import NetworkError, NodeError, PeerRefused, ValidationError
from protocol import LocalProtocolError

MAX_BODY = 4 * 1024 * 1024
log = logging.getLogger(__name__)


def admin_app(parts: AdminParts) -> web.Application:
    expected = f"Bearer {parts.token}".encode()

    @web.middleware
    async def authenticate(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "GET" and request.path in ("/dashboard", "/mijn"):
            return await handler(request)  # type: ignore[no-any-return]  # static page; its data needs the token
        offered = request.headers.get("Authorization", "")
        # Header bytes that are not UTF-8 arrive as surrogates: compare them as the bytes they were.
        if not hmac.compare_digest(offered.encode("utf-8", "surrogateescape"), expected):
            return error(401, "unauthorized", "a valid bearer token is required")
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except PeerRefused as exc:
            return error(502, "peer-refused", exc.reason, code=exc.code, rule=exc.rule)
        except NetworkError as exc:
            return error(502, "peer-unreachable", str(exc))
        except ValidationError as exc:
            return error(400, "invalid", str(exc))
        except NodeError as exc:
            return error(503, "unavailable", str(exc))
        except LocalProtocolError as exc:
            return error(400, "invalid", exc.reason)
        except (ValueError, KeyError, TypeError) as exc:
            return error(400, "invalid", f"bad request: {exc.__class__.__name__}")
        except web.HTTPException:
            raise
        except Exception:  # noqa: BLE001 - a bug: logged for its developers, never a 500 for the caller
            log.exception("the admin API failed on %s %s", request.method, request.path)
            return error(503, "unavailable", "the node could not handle this request")

    app = web.Application(middlewares=[authenticate], client_max_size=MAX_BODY)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/mijn", client_page)
    AdminRoutes(parts).add_to(app)
    MeldingRoutes(parts).add_to(app)
    return app


async def dashboard(request: web.Request) -> web.Response:
    return _page("dashboard.html")


async def client_page(request: web.Request) -> web.Response:
    """A client's own page: his data from every source and who looked at it, in plain Dutch."""
    return _page("client.html")


def _page(name: str) -> web.Response:
    page = resources.files("node.admin").joinpath(f"static/{name}").read_text(encoding="utf-8")
    return web.Response(text=page, content_type="text/html",
                        headers={"Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
                                 "Cache-Control": "no-store"})


__all__ = ["admin_app", "AdminParts"]
