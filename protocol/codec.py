"""The wire codec: keys' strict deterministic CBOR, with protocol errors."""

from __future__ import annotations

from typing import Any, Final

from keys import cbor
from keys.errors import KeysError
from protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError

MAX_MESSAGE_SIZE: Final = cbor.DEFAULT_MAX_SIZE
MAX_DEPTH: Final = cbor.DEFAULT_MAX_DEPTH


def encode(value: Any) -> bytes:
    """Deterministic CBOR; LocalProtocolError if ``value`` cannot be encoded."""
    try:
        return cbor.encode(value)
    except KeysError as exc:
        raise LocalProtocolError(ErrorCode.MALFORMED, exc.reason) from exc


def decode(data: bytes, *, max_size: int = MAX_MESSAGE_SIZE, max_depth: int = MAX_DEPTH) -> Any:
    """Decode one deterministic CBOR item or raise RemoteProtocolError."""
    try:
        return cbor.decode(data, max_size=max_size, max_depth=max_depth)
    except KeysError as exc:
        raise RemoteProtocolError(exc.code, exc.reason) from exc


__all__ = ["encode", "decode", "MAX_MESSAGE_SIZE", "MAX_DEPTH"]
