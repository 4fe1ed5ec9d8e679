"""The CAK's eigen bijdrage, derived from the care periods providers report.

When the CAK fetches a Levering (it is told when care starts, changes or
ends), it keeps one EigenBijdrage per levering: the period from the first
care start to the last end (open while care goes on), an amount per month
from a rule table that is data (eigen_bijdrage.json, illustrative amounts),
the care periods it rests on, and a status (lopend, beeindigd).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from importlib import resources
from typing import Any

from node.store import Actor, Registers
from node.store.records import checked_fields
from protocol.records import RecordVersion

DERIVED_FROM = ("leveringID", "bsn", "zorgkantoor")  # besides its periods, which derive reads when there are any
NAMESPACE = uuid.UUID("5d6e3f1a-9c2b-4e7d-8a1f-0b3c5d7e9f21")


def load_rules() -> dict[str, Any]:
    return json.loads(resources.files("node.care").joinpath("eigen_bijdrage.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def eigen_bijdrage_id(levering_id: str) -> str:
    """One per levering, the same each time (a UUID v4 in form, made from the levering's id)."""
    raw = bytearray(uuid.uuid5(NAMESPACE, levering_id).bytes)
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(raw)))


def derive(levering: dict[str, Any], provider_agb: str, rules: dict[str, Any]) -> dict[str, Any] | None:
    periods = levering.get("leveringperiodes", [])
    if not periods:
        return None
    open_ = any("einddatum" not in p for p in periods)
    amounts = rules["bedrag_per_maand"]
    record: dict[str, Any] = {
        "eigenBijdrageID": eigen_bijdrage_id(levering["leveringID"]), "bsn": levering["bsn"],
        "zorgkantoor": levering["zorgkantoor"],
        "periode": {"ingangsdatum": min(p["ingangsdatum"] for p in periods)},
        "bedragPerMaand": int(amounts["by_leveringsvorm"].get(levering.get("leveringsvorm", ""), amounts["default"])),
        "zorgperiodes": [{"leveringID": levering["leveringID"], "aanbieder": provider_agb,
                          **{k: v for k, v in p.items() if k in ("ingangsdatum", "einddatum")}} for p in periods],
        "status": "lopend" if open_ else "beeindigd",
    }
    if "wlzIndicatieID" in levering:
        record["wlzIndicatieID"] = levering["wlzIndicatieID"]
    if not open_:
        record["periode"]["einddatum"] = max(p["einddatum"] for p in periods)
    return record


class EigenBijdrageDesk:
    def __init__(self, *, registers: Registers, actor: Callable[[], Actor], clock: Callable[[], float]) -> None:
        self.registers = registers
        self.actor = actor
        self.clock = clock
        self.rules = load_rules()

    async def levering_fetched(self, records: list[tuple[RecordVersion, Any, bytes]]) -> None:
        """The CAK fetched care periods: keep the eigen bijdrage that follows from each. A provider signs what it
        likes: what the CAK reads of a Levering must be as its schema has it, and what follows from it must fit the
        EigenBijdrage schema (else ValidationError: the notification is refused, with the reason)."""
        for record, source, _ in records:
            if record.kind != "Levering" or record.data is None:
                continue
            levering = checked_fields("Levering", record.data, DERIVED_FROM)
            derived = derive(levering, source.identifiers.get("agb", ""), self.rules)
            if derived is not None:
                await self.registers.put("EigenBijdrage", derived, actor=self.actor(), now=int(self.clock()))


__all__ = ["EigenBijdrageDesk", "derive", "eigen_bijdrage_id", "load_rules"]
