"""Which notifications a record change causes, and to whom (reference/iwlz.md §1). Pure functions.

A notification names the parent object (``subject``) and the changed record
(``record_id``), ids only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.store.records import is_machtiging
from protocol.events import EVENT_RULES, ID_TYPE_OF_ROLE


@dataclass(frozen=True, slots=True)
class Planned:
    event_type: str
    receiver_id_type: str
    receiver_id: str
    subject: str
    record_id: str
    subscription_id: str | None = None  # set for a subscriber, who is then addressed by did
    receiver_did: str | None = None
    receiver_url: str | None = None  # for a subscriber no peer table holds (a client's node)


def _change(old: Any, new: Any) -> str | None:
    if old is None and new is not None:
        return "NIEUWE"
    if old is not None and new is None:
        return "VERWIJDERDE"
    if old != new:
        return "GEWIJZIGDE"
    return None


def _event(change: str, suffix: str, receiver: str, subject: str, record: str) -> Planned:
    event = f"{change}_{suffix}"
    return Planned(event, EVENT_RULES[event].receiver_id_type, receiver, subject, record)


def indicatie_events(record_id: str, old: dict[str, Any] | None, new: dict[str, Any] | None,
                     responsible: set[str]) -> list[Planned]:
    """NIEUWE to the zorgkantoor of the client's region; GEWIJZIGDE and VERWIJDERDE to every
    zorgkantoor known to be, have been or become responsible."""
    change = _change(old, new)
    if change is None:
        return []
    path = f"WlzIndicatie/{record_id}"
    current = (new or old or {}).get("initieelVerantwoordelijkZorgkantoor")
    receivers = {current} if change == "NIEUWE" else ({current} | responsible)
    events = [_event(change, "INDICATIE_ZORGKANTOOR", uzovi, path, path) for uzovi in sorted(r for r in receivers if r)]
    expiry = _change((old or {}).get("vervaldatum"), (new or {}).get("vervaldatum"))
    if expiry is not None and change == "GEWIJZIGDE":
        events += [_event(expiry, "VERVALLENGELDIGHEID_ZORGKANTOOR", uzovi, path, path) for uzovi in sorted(r for r in receivers if r)]
    return events


def _by_id(items: list[dict[str, Any]] | None, key: str) -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items or []}


def bemiddeling_events(record_id: str, old: dict[str, Any] | None, new: dict[str, Any] | None, own_uzovi: str) -> list[Planned]:
    """Per specificatie, regiehouder and overdracht that appeared, changed or went."""
    subject = f"Bemiddeling/{record_id}"
    events: list[Planned] = []
    old_specs = _by_id((old or {}).get("bemiddelingspecificatie"), "bemiddelingspecificatieID")
    new_specs = _by_id((new or {}).get("bemiddelingspecificatie"), "bemiddelingspecificatieID")
    for spec_id in sorted(set(old_specs) | set(new_specs)):
        before, after = old_specs.get(spec_id), new_specs.get(spec_id)
        change = _change(before, after)
        if change is None:
            continue
        spec = after or before or {}
        path = f"Bemiddelingspecificatie/{spec_id}"
        events.append(_event(change, "BEMIDDELINGSPECIFICATIE_ZORGAANBIEDER", spec["instelling"], subject, path))
        if spec.get("uitvoerendZorgkantoor") and spec["uitvoerendZorgkantoor"] != own_uzovi:
            events.append(_event(change, "BEMIDDELINGSPECIFICATIE_ZORGKANTOOR", spec["uitvoerendZorgkantoor"], subject, path))
    old_regie = _by_id((old or {}).get("regiehouder"), "regiehouderID")
    new_regie = _by_id((new or {}).get("regiehouder"), "regiehouderID")
    for regie_id in sorted(set(old_regie) | set(new_regie)):
        change = _change(old_regie.get(regie_id), new_regie.get(regie_id))
        if change is not None:
            regie = new_regie.get(regie_id) or old_regie[regie_id]
            events.append(_event(change, "REGIEHOUDER_ZORGAANBIEDER", regie["instelling"], subject, f"Regiehouder/{regie_id}"))
    before, after = (old or {}).get("overdracht"), (new or {}).get("overdracht")
    change = _change(before, after)
    if change is not None:
        overdracht = after or before or {}
        events.append(_event(change, "OVERDRACHT_ZORGKANTOOR", overdracht["verantwoordelijkZorgkantoor"], subject,
                             f"Overdracht/{overdracht['overdrachtID']}"))
    return events


def _care_change(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str | None:
    """NIEUWE when care starts, BEEINDIGDE when its last open period gets an end, GEWIJZIGDE otherwise."""
    change = _change(old, new)
    if change != "GEWIJZIGDE":
        return change
    was_open = any("einddatum" not in p for p in (old or {}).get("leveringperiodes", []))
    is_open = any("einddatum" not in p for p in (new or {}).get("leveringperiodes", []))
    return "BEEINDIGDE" if was_open and not is_open else "GEWIJZIGDE"


def levering_events(record_id: str, old: dict[str, Any] | None, new: dict[str, Any] | None,
                    cak: set[str]) -> list[Planned]:
    """Care starting, changing or ending goes to the zorgkantoor the levering names and to the CAK; a new verzoek
    goes to the provider it asks."""
    path = f"Levering/{record_id}"
    data = new or old or {}
    events: list[Planned] = []
    change = _care_change(old, new)
    if change is not None and (_periods(old) != _periods(new) or change in ("NIEUWE", "VERWIJDERDE")):
        events.append(_event(change, "LEVERING_ZORGKANTOOR", data["zorgkantoor"], path, path))
        events += [_event(change, "LEVERING_CAK", kvk, path, path) for kvk in sorted(cak)]
    asked = {v["verzoekID"]: v for v in (new or {}).get("verzoeken", []) if "verzoekID" in v and "aanbieder" in v}
    before = {v.get("verzoekID") for v in (old or {}).get("verzoeken", [])}
    for verzoek_id in sorted(set(asked) - before):
        events.append(Planned("NIEUW_VERZOEKAANBIEDER_AANBIEDER", "AGB", asked[verzoek_id]["aanbieder"], path, path))
    return events


def _periods(data: dict[str, Any] | None) -> list[Any]:
    return list((data or {}).get("leveringperiodes", []))


def answer_events(record_id: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[Planned]:
    """A provider's answer to a verzoek goes to the provider that asked."""
    if old is not None or new is None:
        return []
    return [Planned("NIEUW_VERZOEKANTWOORD_AANBIEDER", "AGB", new["aanvrager"], f"Levering/{new['leveringID']}",
                    f"VerzoekAntwoord/{record_id}")]


def consent_events(record_id: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[Planned]:
    """A withdrawn consent (a tombstone) goes to every source it named, and to the party it was given to, by its
    identifier or by the did of its node; not for a machtiging, given to a person (her node, in no peer table, asks
    his whether it stands)."""
    if old is None or new is not None:
        return []
    path = f"Toestemming/{record_id}"
    out = [Planned("VERWIJDERDE_TOESTEMMING_ONTVANGER", id_type.upper(), str(value), path, path)
           for id_type, value in sorted(old.get("ontvanger", {}).items()) if id_type in ("kvk", "uzovi", "agb")]
    grantee = old.get("ontvanger", {}).get("did")
    if isinstance(grantee, str) and grantee.startswith("did:") and not is_machtiging(old):
        out.append(Planned("VERWIJDERDE_TOESTEMMING_ONTVANGER", "DID", grantee, path, path, receiver_did=grantee))
    for source in sorted(old.get("bronnen", [])):
        id_type, _, value = source.partition(":")
        if source.startswith("did:"):  # a source reads its did among its names as well (policy.pdp's source_ids)
            out.append(Planned("VERWIJDERDE_TOESTEMMING_BRON", "DID", source, path, path, receiver_did=source))
        elif id_type.upper() in ("KVK", "UZOVI", "AGB") and value:
            out.append(Planned("VERWIJDERDE_TOESTEMMING_BRON", id_type.upper(), value, path, path))
    return out


def melding_events(record_id: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[Planned]:
    """A melding whose status changed (answered, taken up, closed) goes back to the party that reported it."""
    if old is None or new is None or old.get("status") == new.get("status"):
        return []
    path = f"Melding/{record_id}"
    to = new["antwoordAan"]
    did = to["id"] if to["idType"] == "DID" else None
    return [Planned("GEWIJZIGDE_MELDING_MELDER", to["idType"], to["id"], path, path, receiver_did=did,
                    receiver_url=to.get("endpoint") if did else None)]


def plan(kind: str, record_id: str, old: dict[str, Any] | None, new: dict[str, Any] | None, *,
         own_uzovi: str | None, responsible: set[str], cak: set[str] | None = None) -> list[Planned]:
    if kind == "Levering":
        return levering_events(record_id, old, new, cak or set())
    if kind == "VerzoekAntwoord":
        return answer_events(record_id, old, new)
    if kind == "Toestemming":
        return consent_events(record_id, old, new)
    if kind == "Melding":
        return melding_events(record_id, old, new)
    if kind == "WlzIndicatie":
        return indicatie_events(record_id, old, new, responsible)
    if kind == "Bemiddeling":
        return bemiddeling_events(record_id, old, new, own_uzovi or "")
    return []


__all__ = ["Planned", "plan", "ID_TYPE_OF_ROLE"]
