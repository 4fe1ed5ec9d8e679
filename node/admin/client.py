"""A small synchronous client of a running node's admin API, for the CLI."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from node.errors import ConfigError, NetworkError, UsageError
from node.home import NodeHome


class AdminClient:
    def __init__(self, home: NodeHome, timeout: float = 30.0) -> None:
        run_file = home.require().path / "run.json"
        try:
            info = json.loads(run_file.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"the node in {home.path} is not running: start it with iwlz run {home.path}") from exc
        self.base = info["admin_url"].rstrip("/")
        self.info = info
        # A person uses his own token (IWLZ_TOKEN, from iwlz user add); without one, the node's own admin.token.
        self.token = os.environ.get("IWLZ_TOKEN") or home.admin_token()
        self.timeout = timeout

    @classmethod
    def at(cls, base: str, token: str, timeout: float = 30.0) -> AdminClient:
        """A client of a node's admin API at ``base`` that runs elsewhere (a container, another machine)."""
        client = cls.__new__(cls)
        client.base, client.token, client.timeout = base.rstrip("/"), token, timeout
        client.info = {"admin_url": client.base, "url": client.call("GET", "/admin/v1/node")["url"]}
        return client

    def stream(self, method: str, path: str) -> Iterator[bytes]:
        """A long answer (an export) in pieces, as it arrives."""
        request = urllib.request.Request(self.base + path, method=method, headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                while chunk := response.read(1 << 16):
                    yield chunk
        except urllib.error.HTTPError as exc:
            raise self._refusal(exc) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise NetworkError(f"cannot reach the node's admin API at {self.base}: {exc.__class__.__name__}") from exc

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """``body``: a value to send as JSON, or bytes that are JSON already."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise self._refusal(exc) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise NetworkError(f"cannot reach the node's admin API at {self.base}: {exc.__class__.__name__}") from exc

    @staticmethod
    def _refusal(exc: urllib.error.HTTPError) -> UsageError:
        try:
            detail = json.loads(exc.read())
        except ValueError:
            detail = {"reason": exc.reason}
        extra = f" (code {detail['code']}, rule {detail.get('rule')})" if detail.get("code") else ""
        return UsageError(f"{detail.get('reason', exc.reason)}{extra}")


def read_json_arg(value: str) -> Any:
    """A JSON document from a file path, or from stdin for '-'."""
    import sys

    try:
        text = sys.stdin.read() if value == "-" else Path(value).read_text(encoding="utf-8")
        return json.loads(text)
    except OSError as exc:
        raise UsageError(f"cannot read {value}: {exc.strerror}") from exc
    except ValueError as exc:
        raise UsageError(f"{value} is not valid JSON") from exc


__all__ = ["AdminClient", "read_json_arg"]
