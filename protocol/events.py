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
    subject_kind: str  # what a notification's subject names: the parent object the receiver is authorised by
    record_kinds: tuple[str, ...]  # what its record_id may name: the changed record


def _family(prefixes: tuple[str, ...], suffix: str, rule: EventRule) -> dict[str, EventRule]:
    return {f"{prefix}_{suffix}": rule for prefix in prefixes}


_CHANGES: Final = ("NIEUWE", "GEWIJZIGDE", "VERWIJDERDE")
_CARE: Final = ("NIEUWE", "GEWIJZIGDE", "BEEINDIGDE", "VERWIJDERDE")  # care started, changed, ended, withdrawn
_INDICATIE: Final = EventRule("ciz", "indicatie", "zorgkantoor", "UZOVI", "WlzIndicatie", ("WlzIndicatie",))


def _bemiddeling(receiver_role: str, receiver_id_type: str, record: str) -> EventRule:
    return EventRule("zorgkantoor", "bemiddeling", receiver_role, receiver_id_type, "Bemiddeling", (record,))

EVENT_RULES: Final[dict[str, EventRule]] = {
    **_family(_CHANGES, "INDICATIE_ZORGKANTOOR", _INDICATIE),
    **_family(_CHANGES, "VERVALLENGELDIGHEID_ZORGKANTOOR", _INDICATIE),
    **_family(_CHANGES, "BEMIDDELINGSPECIFICATIE_ZORGAANBIEDER", _bemiddeling("zorgaanbieder", "AGB", "Bemiddelingspecificatie")),
    **_family(_CHANGES, "BEMIDDELINGSPECIFICATIE_ZORGKANTOOR", _bemiddeling("zorgkantoor", "UZOVI", "Bemiddelingspecificatie")),
    **_family(_CHANGES, "REGIEHOUDER_ZORGAANBIEDER", _bemiddeling("zorgaanbieder", "AGB", "Regiehouder")),
    **_family(_CHANGES, "OVERDRACHT_ZORGKANTOOR", _bemiddeling("zorgkantoor", "UZOVI", "Overdracht")),
    # Ours, beyond iWlz (the Leveringsregister is a draft): care starting, changing and ending, to the responsible
    # zorgkantoor and the CAK; a provider's answer to a verzoek; a source's answer to a melding.
    **_family(_CARE, "LEVERING_ZORGKANTOOR", EventRule("zorgaanbieder", "levering", "zorgkantoor", "UZOVI", "Levering", ("Levering",))),
    **_family(_CARE, "LEVERING_CAK", EventRule("zorgaanbieder", "levering", "cak", "KVK", "Levering", ("Levering",))),
    "NIEUW_VERZOEKANTWOORD_AANBIEDER": EventRule("zorgaanbieder", "levering", "zorgaanbieder", "AGB", "Levering",
                                                 ("VerzoekAntwoord",)),
    "GEWIJZIGDE_MELDING_MELDER": EventRule("*", "meldingen", "*", "*", "Melding", ("Melding",)),
    # Ours, beyond iWlz: a client withdrew a consent; every source he named hears of it ("*": any role, any id type),
    # and the party he gave it to, which lets go of it.
    "VERWIJDERDE_TOESTEMMING_BRON": EventRule("client", "toestemming", "*", "*", "Toestemming", ("Toestemming",)),
    "VERWIJDERDE_TOESTEMMING_ONTVANGER": EventRule("client", "toestemming", "*", "*", "Toestemming", ("Toestemming",)),
    "NIEUW_VERZOEKAANBIEDER_AANBIEDER": EventRule("zorgaanbieder", "levering", "zorgaanbieder", "AGB", "Levering", ("Levering",)),
}

MELDING_EVENT: Final = "IWLZFOUTMELDING"
# The iWlz IDTypeEnum, and DID: a subscriber that is no organisation (a client's node) is addressed by its did.
ID_TYPES: Final = ("AGB", "BSN", "KVK", "OIN", "UZOVI", "DID")
# The identifier type and certificate identifier a party of each role is addressed by (a client: his did).
ID_TYPE_OF_ROLE: Final[dict[str, tuple[str, str]]] = {
    "ciz": ("KVK", "kvk"), "cak": ("KVK", "kvk"), "zorgkantoor": ("UZOVI", "uzovi"), "zorgaanbieder": ("AGB", "agb")}

__all__ = ["EventRule", "EVENT_RULES", "MELDING_EVENT", "ID_TYPES", "ID_TYPE_OF_ROLE"]
