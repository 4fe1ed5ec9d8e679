"""TLS for the peer listener and the peer client: optional, from files the operator names in config.json.

Every message is signed and its body sealed to the receiver, so TLS adds no trust
a node relies on; it hides what the envelope leaves readable (who talks to whom,
message sizes, the path) and is what an organisation's network rules often ask
for. A node either terminates TLS itself (``tls_cert``/``tls_key``) or sits
behind a reverse proxy that does (``public_url`` then names the proxy's https
URL). Peers check the server certificate against the system's CAs plus
``tls_ca`` when given: a network with its own CA names it there.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from node.errors import ConfigError


def _resolve(home: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else home / path


def server_context(home: Path, cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The listener's context, or None for plain HTTP. Raises ConfigError for a missing or wrong pair."""
    if not cert and not key:
        return None
    if not cert or not key:
        raise ConfigError("TLS needs both tls_cert and tls_key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(_resolve(home, cert), _resolve(home, key))
    except FileNotFoundError as exc:
        raise ConfigError(f"TLS file not found: {exc.filename}") from exc
    except (ssl.SSLError, OSError) as exc:
        # The reason names the failing check (e.g. KEY_VALUES_MISMATCH), never the key.
        raise ConfigError(f"TLS certificate and key cannot be used: {getattr(exc, 'reason', None) or exc.__class__.__name__}") from exc
    return context


def client_context(home: Path, ca: str | None) -> ssl.SSLContext | None:
    """What the peer client trusts for https peers: the system's CAs, plus the network's own CA when named. None
    when none is named: the client then takes aiohttp's own context, which holds the system's CAs with the same
    checks (TLS 1.2 at least, the host name), made when aiohttp is imported; one of ours would load them again,
    ~20 ms of every start of every node and worker process."""
    if not ca:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cafile=_resolve(home, ca))
    except FileNotFoundError as exc:
        raise ConfigError(f"TLS CA file not found: {exc.filename}") from exc
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"TLS CA file cannot be used: {getattr(exc, 'reason', None) or exc.__class__.__name__}") from exc
    return context


__all__ = ["server_context", "client_context"]
