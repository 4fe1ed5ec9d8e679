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


_KEY_BYTES: dict[int | str, bytes] = {}
_KEY_CACHE_LIMIT: Final = 4096
# Only short keys are remembered: a peer's message may hold keys of any length, and what is remembered outlives it.
_REMEMBERED_KEY: Final = 64


def _key_bytes(key: int | str) -> bytes:
    """The encoding of a map key; keys repeat a lot, so short ones are cached."""
    encoded = _KEY_BYTES.get(key)
    if encoded is None:
        encoded = cbor2.dumps(key)
        if len(encoded) <= _REMEMBERED_KEY:
            _make_room(_KEY_BYTES, _KEY_CACHE_LIMIT)
            _KEY_BYTES[key] = encoded
    return encoded


def _make_room(cache: dict[Any, Any] | set[Any], limit: int) -> None:
    """A cache of what peers send is emptied when full: it can never hold more than ``limit`` entries."""
    if len(cache) >= limit:
        cache.clear()


# The deterministic order of text-key sets seen before, by the keys as given. Messages repeat a few key sets, so
# the per-key work (encoding each key, sorting) is done once per set. Only sets of text keys are remembered: a key
# equal to a text key is that text (unlike 1, which equals True and 1.0), so a hit cannot let another type through.
# At most _ORDER_CACHE_LIMIT sets of at most _REMEMBERED_KEYS short keys: a few MiB whatever peers send.
_ORDERS: dict[tuple[Any, ...], tuple[str, ...]] = {}
_ORDERED: set[tuple[Any, ...]] = set()  # text-key sets seen already in deterministic order (decoding)
_ORDER_CACHE_LIMIT: Final = 1024
_REMEMBERED_KEYS: Final = 32


def _worth_keeping(keys: tuple[str, ...]) -> bool:
    return len(keys) <= _REMEMBERED_KEYS and all(len(key) <= _REMEMBERED_KEY for key in keys)


_SCALARS: Final = (str, bytes, bool, type(None))
_MAPS: Final = (dict, cbor2.frozendict)
_ARRAYS: Final = (list, tuple)


def _validate(value: Any, depth: int, max_depth: int, allowed_tags: frozenset[int]) -> None:
    """Check a decoded value: our data model only, map keys in deterministic order."""
    kind = type(value)
    if kind in _SCALARS:
        return
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise MalformedData("integer out of range")
        return
    if depth >= max_depth:
        raise MalformedData("CBOR nesting is too deep")
    if kind in _ARRAYS:
        for item in value:
            if type(item) not in _SCALARS:
                _validate(item, depth + 1, max_depth, allowed_tags)
        return
    if kind in _MAPS:
        keys = tuple(value)
        if keys not in _ORDERED:
            _check_order(keys)
        for item in value.values():
            if type(item) not in _SCALARS:
                _validate(item, depth + 1, max_depth, allowed_tags)
        return
    if kind is cbor2.CBORTag:
        if value.tag not in allowed_tags:
            raise MalformedData(f"CBOR tag {value.tag} is not allowed")
        _validate(value.value, depth + 1, max_depth, allowed_tags)
        return
    raise MalformedData(f"CBOR type {kind.__name__} is not allowed")


def _check_order(keys: tuple[Any, ...]) -> None:
    previous = b""
    text_only = True
    for key in keys:
        if type(key) is not str:
            if type(key) is not int:
                raise MalformedData("map keys must be integers or text")
            text_only = False
        encoded = _key_bytes(key)
        if encoded <= previous:
            raise MalformedData("input is not in deterministic CBOR encoding (map key order)")
        previous = encoded
    if text_only and _worth_keeping(keys):
        _make_room(_ORDERED, _ORDER_CACHE_LIMIT)
        _ORDERED.add(keys)


def _thaw(value: Any) -> Any:
    """cbor2 decodes inside tags to tuples and frozendicts; hand out lists and dicts."""
    kind = type(value)
    if kind in _ARRAYS:
        return [_thaw(v) for v in value]
    if kind in _MAPS:
        return {k: _thaw(v) for k, v in value.items()}
    if kind is cbor2.CBORTag:
        return cbor2.CBORTag(value.tag, _thaw(value.value))
    return value


def _prepare(value: Any, depth: int) -> Any:
    """A copy of ``value`` ready for cbor2: maps in deterministic key order, checked types."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise MalformedData("integer out of range")
        return value
    if depth > DEFAULT_MAX_DEPTH * 4:
        raise MalformedData("CBOR nesting is too deep")
    if kind in _ARRAYS:
        return [v if type(v) in _SCALARS else _prepare(v, depth + 1) for v in value]
    if kind is dict or isinstance(value, Mapping):
        keys = tuple(value)
        order = _ORDERS.get(keys)
        if order is None:
            order = _sorted_keys(keys)
        return {key: item if type(item := value[key]) in _SCALARS else _prepare(item, depth + 1) for key in order}
    if kind is cbor2.CBORTag:
        return cbor2.CBORTag(value.tag, _prepare(value.value, depth + 1))
    if isinstance(value, (int, str, bytes)):  # subclasses such as IntEnum or StrEnum
        return value
    raise MalformedData(f"CBOR type {kind.__name__} is not allowed")


def _sorted_keys(keys: tuple[Any, ...]) -> tuple[Any, ...]:
    for key in keys:
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            raise MalformedData("map keys must be integers or text")
    order = tuple(sorted(keys, key=_key_bytes))
    if all(type(key) is str for key in keys) and _worth_keeping(keys):
        _make_room(_ORDERS, _ORDER_CACHE_LIMIT)
        _ORDERS[keys] = order
    return order


def encode(value: Any) -> bytes:
    """Encode ``value`` in core deterministic encoding.

    Raises:
        MalformedData: the value holds something CBOR (or we) cannot encode.
    """
    prepared = _prepare(value, 0)
    try:
        return cbor2.dumps(prepared)
    except (cbor2.CBOREncodeError, TypeError, ValueError) as exc:
        raise MalformedData("value cannot be encoded as CBOR") from exc


def decode_trusted(data: bytes) -> Any:
    """Decode CBOR this node wrote itself (its own store): no strictness checks."""
    try:
        return cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError) as exc:
        raise MalformedData("stored CBOR is damaged") from exc


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
    _validate(raw, 0, max_depth, allowed_tags)
    if cbor2.dumps(raw) != data:
        raise MalformedData("input is not in deterministic CBOR encoding")
    return _thaw(raw) if type(raw) is cbor2.CBORTag else raw


__all__ = ["encode", "decode", "decode_trusted", "Tag", "DEFAULT_MAX_SIZE", "DEFAULT_MAX_DEPTH"]
