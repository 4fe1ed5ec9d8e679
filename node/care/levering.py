"""Care a provider records (Levering) must rest on the Bemiddelingspecificatie that assigned it.

The check runs before the record is stored: the specificatie is evidence the
provider holds (it fetched it when the zorgkantoor told it), still verifies,
names this provider, the same client and indicatie, a zorgkantoor of the
bemiddeling, and every care period lies within the toewijzing. A Levering
that fails is refused with the rule named (LEVERING-TOEWIJZING).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keys import Member, TrustStore
from node.errors import ValidationError
from node.store import Store
from node.store.records import checked_fields
from protocol import RemoteProtocolError
from protocol.records import verify_record

RULE = "LEVERING-TOEWIJZING"
READ_OF_SPEC = ("instelling", "client", "wlzIndicatieID", "verantwoordelijkZorgkantoor", "uitvoerendZorgkantoor",
                "toewijzingIngangsdatum")


def _refuse(reason: str) -> ValidationError:
    return ValidationError(f"{RULE}: {reason}")


class LeveringCheck:
    def __init__(self, *, store: Store, trust: TrustStore, me: Callable[[], Member], clock: Callable[[], float]) -> None:
        self.store = store
        self.trust = trust
        self.me = me
        self.clock = clock

    async def __call__(self, levering: dict[str, Any]) -> None:
        row = await self.store.fetchone("SELECT signed FROM evidence WHERE kind = 'Bemiddelingspecificatie' AND record_id = ?",
                                        (levering["bemiddelingspecificatieID"],))
        if row is None:
            raise _refuse("this provider holds no Bemiddelingspecificatie with that bemiddelingspecificatieID: "
                          "care rests on a toewijzing the zorgkantoor sent")
        try:
            record, _ = verify_record(bytes(row[0]), self.trust, int(self.clock()))
        except RemoteProtocolError as exc:
            raise _refuse(f"the Bemiddelingspecificatie held for it does not verify ({exc.code})") from exc
        try:  # a zorgkantoor signs what it likes
            spec = checked_fields("Bemiddelingspecificatie", record.data, READ_OF_SPEC)
        except ValidationError as exc:
            raise _refuse(f"the Bemiddelingspecificatie held for it is none: {exc}") from exc
        if spec.get("instelling") not in self.me().identifier_values("agb"):
            raise _refuse("the Bemiddelingspecificatie assigns another provider")
        if (spec.get("client") or {}).get("bsn") != levering["bsn"]:
            raise _refuse("bsn is not the client of the Bemiddelingspecificatie")
        if levering.get("wlzIndicatieID", spec.get("wlzIndicatieID")) != spec.get("wlzIndicatieID"):
            raise _refuse("wlzIndicatieID is not the indicatie of the Bemiddelingspecificatie")
        if levering["zorgkantoor"] not in {spec.get("verantwoordelijkZorgkantoor"), spec.get("uitvoerendZorgkantoor")}:
            raise _refuse("zorgkantoor is not a zorgkantoor of the bemiddeling")
        start, end = spec.get("toewijzingIngangsdatum", ""), spec.get("toewijzingEinddatum")
        for i, period in enumerate(levering.get("leveringperiodes", [])):
            last = period.get("einddatum", period["ingangsdatum"])
            if period["ingangsdatum"] < start or (end is not None and last > end):
                raise _refuse(f"leveringperiodes[{i}] lies outside the toewijzing")


__all__ = ["LeveringCheck", "RULE"]
