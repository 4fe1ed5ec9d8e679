"""Strict, deterministic CBOR over cbor2.

Strategy: cbor2 does the parsing (with indefinite lengths, duplicate keys and
its built-in semantic tags switched off or rejected), a walk then checks that
only the data model we use is present, and finally the value is encoded again
and compared with the input. That last step makes "deterministic encoding"
(RFC 8949 §4.2.1: shortest heads, definite lengths, map keys sorted by their
encoded bytes) a property of every accepted input, and it also rejects
trailing bytes, which cbor2 silently ignores.

cbor2's own ``canonical=True`` sorts keys length-first (RFC 7049), which
differs from RFC 8949 for maps that mix key types, so keys are sorted here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import cbor2

from keys.errors import MalformedData, TooLarge

DEFAULT_MAX_SIZE: Final = 1024 * 1024
DEFAULT_MAX_DEPTH: Final = 16
_INT_MIN: Final = -(2**64)
_INT_MAX: Final = 2**64 - 1
# cbor2 decodes these tag numbers itself (dates, bignums, decimals, regexes,
# sets, ...); every one of them is refused unless a caller allows it.
_BUILTIN_TAGS: Final = tuple(range(0, 1100)) + (25441, 55799)

Tag = cbor2.CBORTag


def _refuse_tag(tag: int) -> Any:
    def refuse(value: Any, immutable: bool) -> Any:
        raise MalformedData(f"CBOR tag {tag} is not allowed")

    return refuse


def _keep_tag(tag: int) -> Any:
    def keep(value: Any, immutable: bool) -> Any:
        return cbor2.CBORTag(tag, value)

    return keep


def _unknown_tag(tag: Any, immutable: bool) -> Any:
    raise MalformedData(f"CBOR tag {tag.tag} is not allowed")


_DECODERS: dict[frozenset[int], dict[int, Any]] = {}


def _semantic_decoders(allowed_tags: frozenset[int]) -> dict[int, Any]:
    decoders = _DECODERS.get(allowed_tags)
    if decoders is None:
        decoders = {t: _refuse_tag(t) for t in _BUILTIN_TAGS}
        decoders.update({t: _keep_tag(t) for t in allowed_tags})
        _DECODERS[allowed_tags] = decoders
    return decoders


def _sorted_map(value: Mapping[Any, Any]) -> dict[Any, Any]:
    keyed = [(cbor2.dumps(k), k, _prepare(v)) for k, v in value.items()]
    keyed.sort(key=lambda item: item[0])
    return {k: v for _, k, v in keyed}


def _prepare(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _sorted_map(value)
    if isinstance(value, (list, tuple)):
        return [_prepare(v) for v in value]
    if isinstance(value, cbor2.CBORTag):
        return cbor2.CBORTag(value.tag, _prepare(value.value))
    return value


def encode(value: Any) -> bytes:
    """Encode ``value`` in core deterministic encoding.

    Raises:
        MalformedData: the value holds something CBOR (or we) cannot encode.
    """
    _check(value, depth=0, max_depth=DEFAULT_MAX_DEPTH * 4, allowed_tags=None)
    try:
        return cbor2.dumps(_prepare(value))
    except (cbor2.CBOREncodeError, TypeError, ValueError) as exc:
        raise MalformedData("value cannot be encoded as CBOR") from exc


def _check(value: Any, *, depth: int, max_depth: int, allowed_tags: frozenset[int] | None) -> Any:
    """Validate the data model and return a plain (dict/list) copy."""
    if depth > max_depth:
        raise MalformedData("CBOR nesting is too deep")
    if value is None or isinstance(value, (bool, str, bytes)):
        return value
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise MalformedData("integer out of range")
        return value
    if isinstance(value, (list, tuple)):
        return [_check(v, depth=depth + 1, max_depth=max_depth, allowed_tags=allowed_tags) for v in value]
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if isinstance(k, bool) or not isinstance(k, (int, str)):
                raise MalformedData("map keys must be integers or text")
            out[k] = _check(v, depth=depth + 1, max_depth=max_depth, allowed_tags=allowed_tags)
        return out
    if isinstance(value, cbor2.CBORTag):
        if allowed_tags is not None and value.tag not in allowed_tags:
            raise MalformedData(f"CBOR tag {value.tag} is not allowed")
        inner = _check(value.value, depth=depth + 1, max_depth=max_depth, allowed_tags=allowed_tags)
        return cbor2.CBORTag(value.tag, inner)
    raise MalformedData(f"CBOR type {type(value).__name__} is not allowed")


def _reason(exc: BaseException) -> str:
    text = str(exc).lower()
    if "duplicate" in text:
        return "duplicate map key"
    if "depth" in text or isinstance(exc, RecursionError):
        return "CBOR nesting is too deep"
    if "indefinite" in text:
        return "indefinite-length items are not allowed"
    return "input is not well-formed CBOR"


def decode(
    data: bytes,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
    allowed_tags: frozenset[int] = frozenset(),
) -> Any:
    """Decode one deterministically encoded CBOR item.

    Returns plain ``dict``/``list`` containers (tag contents included).

    Raises:
        TooLarge: ``data`` is longer than ``max_size``.
        MalformedData: anything else that is not exactly what we accept.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedData("expected bytes")
    if len(data) > max_size:
        raise TooLarge(f"input of {len(data)} bytes exceeds the limit of {max_size}")
    data = bytes(data)
    if not data:
        raise MalformedData("empty input")
    try:
        raw = cbor2.loads(
            data,
            semantic_decoders=_semantic_decoders(allowed_tags),
            tag_hook=_unknown_tag,
            max_depth=max_depth,
            allow_indefinite=False,
            allow_duplicate_keys=False,
        )
    except MalformedData:
        raise
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, MalformedData) else None
        if cause is not None:
            raise cause from exc
        raise MalformedData(_reason(exc)) from exc
    value = _check(raw, depth=0, max_depth=max_depth, allowed_tags=allowed_tags)
    if cbor2.dumps(_prepare(value)) != data:
        raise MalformedData("input is not in deterministic CBOR encoding")
    return value


__all__ = ["encode", "decode", "Tag", "DEFAULT_MAX_SIZE", "DEFAULT_MAX_DEPTH"]
