"""The local admin API: JSON over HTTP for the organisation's own systems, and its web interface (/beheer).

Bound to 127.0.0.1 unless configured otherwise; every call needs the bearer
token from the node's home (admin.token). A wrong or missing token gets 401
and changes nothing.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import re
from importlib import resources
from typing import Any, Final

from aiohttp import web

from node.admin.meldingen import MeldingRoutes
from node.admin.access import USER, identify
from node.admin.clientside import ClientRoutes
from node.admin.network import NetworkRoutes
from node.admin.operations import OperationRoutes
from node.admin.parts import AdminParts, error
from node.admin.records import RecordRoutes
from node.admin.transfer import TransferRoutes
from node.errors import NetworkError, NodeError, PeerRefused, ValidationError
from protocol import LocalProtocolError

MAX_BODY = 4 * 1024 * 1024
log = logging.getLogger(__name__)


ROUTE_GROUPS: Final = (RecordRoutes, TransferRoutes, NetworkRoutes, MeldingRoutes, ClientRoutes, OperationRoutes)


def admin_app(parts: AdminParts) -> web.Application:
    node_token = parts.token.encode()

    @web.middleware
    async def authenticate(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "GET" and request.path in PAGES:
            return await handler(request)  # type: ignore[no-any-return]  # static page; its data needs a token
        user = identify(request, node_token, parts.users.by_token)
        if user is None:
            return error(401, "unauthorized", "a valid bearer token is required")
        request[USER] = user
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except PeerRefused as exc:
            return error(502, "peer-refused", exc.reason, code=exc.code, rule=exc.rule)
        except NetworkError as exc:
            return error(502, "peer-unreachable", str(exc))
        except ValidationError as exc:
            return error(400, "invalid", str(exc), **({"field": exc.field} if exc.field else {}))
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
    app.on_response_prepare.append(_never_kept)
    for path, page in PAGES.items():
        app.router.add_get(path, page)
    for group in ROUTE_GROUPS:
        group(parts).add_to(app)
    return app


async def _never_kept(request: web.Request, response: web.StreamResponse) -> None:
    """What the admin API answers holds personal data: no browser or proxy keeps it, and none reads it as anything
    but what it says it is. Set as each response is prepared, so streamed exports have it too."""
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Content-Type-Options"] = "nosniff"


async def dashboard(request: web.Request) -> web.Response:
    """The former developers' dashboard: the web interface shows all it showed."""
    raise web.HTTPFound("/beheer")


async def client_page(request: web.Request) -> web.Response:
    """A client's own page: his data from every source and who looked at it, in plain Dutch."""
    return _page("client.html")


async def beheer(request: web.Request) -> web.Response:
    """The operator's web interface: search, records and their history, forms, meldingen, notifications, checks."""
    return _page("beheer.html")


PAGES: Final = {"/beheer": beheer, "/dashboard": dashboard, "/mijn": client_page}


@functools.cache
def _page_and_policy(name: str) -> tuple[str, str]:
    """A page and the one policy it runs under: only the script and the style it ships (named by their hashes, so
    text that a flaw let become markup can never become a script), data from its own node only, never framed."""
    page = resources.files("node.admin").joinpath(f"static/{name}").read_text(encoding="utf-8")
    scripts, styles = (" ".join(f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
                                for body in re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL))
                       for tag in ("script", "style"))
    policy = (f"default-src 'none'; script-src {scripts}; style-src {styles}; connect-src 'self'; img-src 'self'; "
              "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
    return page, policy


def _page(name: str) -> web.Response:
    page, policy = _page_and_policy(name)
    return web.Response(text=page, content_type="text/html",
                        headers={"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff",
                                 "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cache-Control": "no-store"})


__all__ = ["admin_app", "AdminParts"]
