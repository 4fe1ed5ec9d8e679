"""Dutch identifiers used in the Wlz: BSN (11-proef), AGB, UZOVI, KVK."""

from __future__ import annotations

from typing import Final

from keys.errors import InvalidIdentifier

_BSN_WEIGHTS: Final = (9, 8, 7, 6, 5, 4, 3, 2, -1)


def _digits(value: object, length: int, name: str) -> str:
    if not isinstance(value, str) or len(value) != length or not value.isascii() or not value.isdigit():
        raise InvalidIdentifier(f"{name} must be {length} digits")
    return value


def check_bsn(value: object) -> str:
    """A BSN: 9 digits passing the 11-proef. The error never repeats the value."""
    bsn = _digits(value, 9, "BSN")
    total = sum(int(d) * w for d, w in zip(bsn, _BSN_WEIGHTS))
    if total % 11 != 0 or bsn == "000000000":
        raise InvalidIdentifier("BSN fails the 11-proef")
    return bsn


def check_agb(value: object) -> str:
    return _digits(value, 8, "AGB code")


def check_uzovi(value: object) -> str:
    return _digits(value, 4, "UZOVI code")


def check_kvk(value: object) -> str:
    return _digits(value, 8, "KVK number")


CHECKS: Final = {"bsn": check_bsn, "agb": check_agb, "uzovi": check_uzovi, "kvk": check_kvk}


def check_identifier(kind: str, value: object) -> str:
    check = CHECKS.get(kind)
    if check is None:
        raise InvalidIdentifier(f"unknown identifier type {kind!r}")
    return check(value)


__all__ = ["check_bsn", "check_agb", "check_uzovi", "check_kvk", "check_identifier", "CHECKS"]
