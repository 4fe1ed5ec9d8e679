"""iWlz event types: which register sends them and who receives them.

Names follow the iWlz notification specifications (reference/iwlz.md §1).
The receiver id type is the identifier the receiving party is addressed by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class EventRule:
    sender_role: str
    register: str
    receiver_role: str
    receiver_id_type: str


def _family(prefixes: tuple[str, ...], suffix: str, rule: EventRule) -> dict[str, EventRule]:
    return {f"{prefix}_{suffix}": rule for prefix in prefixes}


_CHANGES: Final = ("NIEUWE", "GEWIJZIGDE", "VERWIJDERDE")
_INDICATIE: Final = EventRule("ciz", "indicatie", "zorgkantoor", "UZOVI")
_BEMIDDELING_ZA: Final = EventRule("zorgkantoor", "bemiddeling", "zorgaanbieder", "AGB")
_BEMIDDELING_ZK: Final = EventRule("zorgkantoor", "bemiddeling", "zorgkantoor", "UZOVI")

EVENT_RULES: Final[dict[str, EventRule]] = {
    **_family(_CHANGES, "INDICATIE_ZORGKANTOOR", _INDICATIE),
    **_family(_CHANGES, "VERVALLENGELDIGHEID_ZORGKANTOOR", _INDICATIE),
    **_family(_CHANGES, "BEMIDDELINGSPECIFICATIE_ZORGAANBIEDER", _BEMIDDELING_ZA),
    **_family(_CHANGES, "BEMIDDELINGSPECIFICATIE_ZORGKANTOOR", _BEMIDDELING_ZK),
    **_family(_CHANGES, "REGIEHOUDER_ZORGAANBIEDER", _BEMIDDELING_ZA),
    **_family(_CHANGES, "OVERDRACHT_ZORGKANTOOR", _BEMIDDELING_ZK),
    "NIEUW_VERZOEKAANBIEDER_AANBIEDER": EventRule("zorgaanbieder", "levering", "zorgaanbieder", "AGB"),
}

MELDING_EVENT: Final = "IWLZFOUTMELDING"
ID_TYPES: Final = ("AGB", "BSN", "KVK", "OIN", "UZOVI")

__all__ = ["EventRule", "EVENT_RULES", "MELDING_EVENT", "ID_TYPES"]
