"""Meldingen at the source: a party reports an error in one of this node's records (eventType IWLZFOUTMELDING).

The source accepts a melding only about a record it holds (else ``not-found``,
rule MELDING-RECORD) and only from a party the record is about or was sent to
(the matrix's 'meldingen' relations, else ``denied``, rule MELDING-MELDER); a
client about his own data is such a party, and his melding is a request for
correction. It keeps the melding as a Melding record with a status
(ontvangen, in_behandeling, afgehandeld, afgewezen) and a deadline of one
working day. Each status change is a new version, and the outbox notifies the
reporter (GEWIJZIGDE_MELDING_MELDER), who fetches the answer with MELDING-STATUS.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from keys import Member
from node.care.calendar import WorkingDays
from node.errors import ValidationError
from node.interfaces import Handlers
from node.store import RECORD_TYPES, Actor, Registers, Statement, Store, StoredVersion
from protocol import ID_TYPE_OF_ROLE, Ack, ErrorCode, Incoming, Melding, Message, RemoteProtocolError

log = logging.getLogger(__name__)

OPEN = ("ontvangen", "in_behandeling")
FINAL = ("afgehandeld", "afgewezen")
NEXT: dict[str, tuple[str, ...]] = {"ontvangen": ("in_behandeling", *FINAL), "in_behandeling": FINAL}
# Meldingen of one reporter a source keeps open at most: more than a party's honest errors after a bad load, few
# enough that a related party cannot fill the source's store with them. The next is refused for now (conflict): its
# reporter's outbox sends it again, and it is kept once the source has answered one of the others.
MAX_OPEN_PER_REPORTER = 1000
# A reporter's open meldingen, counted on the lookup keys alone: one seek per melding of his, nothing decoded.
_OPEN_FROM = ("SELECT count(*) FROM record_keys m JOIN record_keys s ON s.record = m.record "
              "WHERE m.name = 'melder' AND m.value = ? AND s.name = 'status' AND s.value IN "
              f"({', '.join(repr(status) for status in OPEN)})")
# Raises a signed denial when the member may not report an error in this record (PolicyDecisionPoint.check_reporter).
CheckReporter = Callable[[Member, str, dict[str, Any], bytes | None], Awaitable[None]]  # bytes: a client's BSN key


def answer_address(reporter: Member, endpoint: str | None) -> dict[str, str]:
    """Where the answer goes: an organisation by the identifier of its role, a client by his did and his node."""
    if reporter.role in ID_TYPE_OF_ROLE:
        id_type, key = ID_TYPE_OF_ROLE[reporter.role]
        if key in reporter.identifiers:
            return {"idType": id_type, "id": reporter.identifiers[key]}
    return {"idType": "DID", "id": reporter.did, **({"endpoint": endpoint} if endpoint else {})}


class MeldingDesk:
    def __init__(self, *, registers: Registers, check_reporter: CheckReporter, calendar: WorkingDays,
                 actor: Callable[[], Actor], clock: Callable[[], float]) -> None:
        self.registers = registers
        self.check_reporter = check_reporter
        self.calendar = calendar
        self.actor = actor
        self.clock = clock

    def handlers(self) -> Handlers:
        return {Melding: self._on_melding}

    async def _on_melding(self, incoming: Incoming, now: int) -> tuple[Message, list[Statement]]:
        melding = incoming.message
        assert isinstance(melding, Melding)
        known = await self.registers.current("Melding", melding.melding_id)
        if known is not None:
            if known.data is None or known.data["melder"] != incoming.sender.did:
                raise RemoteProtocolError(ErrorCode.MALFORMED, "this melding_id is taken: choose a new one",
                                          rule="MELDING-ID")
            return Ack(ref=melding.melding_id, status="duplicate"), []
        kind, target = await self._target(melding.record)
        await self.check_reporter(incoming.sender, kind, target, melding.bsn_key)
        row = await self.registers.store.fetchone(_OPEN_FROM, (incoming.sender.did,))
        if row is not None and row[0] >= MAX_OPEN_PER_REPORTER:
            raise RemoteProtocolError(ErrorCode.CONFLICT, f"{row[0]} meldingen of yours are open here: this one is "
                                      "kept once one of them is answered", rule="MELDING-OPEN")
        received = date.fromtimestamp(now)
        data = {
            "meldingID": melding.melding_id, "record": melding.record, "regel": melding.rule,
            "omschrijving": melding.description or None, "bsn": RECORD_TYPES[kind].bsn(target),
            "melder": incoming.sender.did, "melderOrganisatie": incoming.sender.organisation,
            "melderRol": incoming.sender.role, "antwoordAan": answer_address(incoming.sender, melding.endpoint),
            "status": "ontvangen", "ontvangen": received.isoformat(),
            "termijn": self.calendar.next_working_day(received).isoformat(),
        }
        try:
            await self.registers.put("Melding", data, actor=Actor.of(incoming.sender), now=now,
                                     trace_id=incoming.envelope.trace_id, request=incoming.data)
        except ValidationError as exc:
            raise RemoteProtocolError(ErrorCode.MALFORMED, f"the melding cannot be kept: {exc}") from exc
        return Ack(ref=melding.melding_id, status="accepted"), []

    async def _target(self, path: str) -> tuple[str, dict[str, Any]]:
        """The record a melding is about (a Bemiddelingspecificatie is part of a Bemiddeling), as kind and data."""
        kind, _, record_id = path.partition("/")
        found: StoredVersion | None = None
        if kind == "Bemiddelingspecificatie":
            within = await self.registers.find("bemiddelingspecificatieID", record_id, kinds=("Bemiddeling",))
            found = within[0] if within else None
        elif kind in RECORD_TYPES and kind != "Melding" and RECORD_TYPES[kind].source_role == self.registers.role:
            found = await self.registers.current(kind, record_id)
        if found is None or found.data is None:
            raise RemoteProtocolError(ErrorCode.NOT_FOUND, "this node holds no such record", rule="MELDING-RECORD")
        return found.kind, found.data

    # The source's side: answering and following up -------------------------------------

    async def answer(self, melding_id: str, status: str, reason: str | None, *, actor: Actor | None = None) -> dict[str, Any]:
        """Give a melding its next status, with the reason; a final status closes it. The reporter is notified."""
        current = await self.registers.current("Melding", melding_id)
        if current is None or current.data is None:
            raise ValidationError(f"no melding {melding_id}")
        was = current.data["status"]
        if status not in NEXT.get(was, ()):
            allowed = ", ".join(NEXT.get(was, ())) or "none: it is closed"
            raise ValidationError(f"a melding that is {was} cannot become {status} (allowed: {allowed})")
        if status in FINAL and not reason:
            raise ValidationError("closing a melding needs a reason for the reporter")
        now = int(self.clock())
        data = {**current.data, "status": status, **({"reden": reason} if reason else {})}
        if status in FINAL:
            data["afgehandeldOp"] = date.fromtimestamp(now).isoformat()
        stored, _ = await self.registers.put("Melding", data, actor=actor or self.actor(), now=now)
        return self._row(stored, date.fromtimestamp(now))

    async def list(self, *, state: str = "all", limit: int = 1000) -> list[dict[str, Any]]:
        """Meldingen received, newest first: all, the open ones, or those open past their deadline."""
        today = date.fromtimestamp(self.clock())
        if state == "all":
            found = await self.registers.list_current("Melding", limit=limit)
        else:
            found = [v for status in OPEN for v in await self.registers.find("status", status, kinds=("Melding",))]
        rows = [self._row(v, today) for v in found]
        if state == "overdue":
            rows = [r for r in rows if r["overdue"]]
        return sorted(rows, key=lambda r: (r["ontvangen"], r["meldingID"]), reverse=True)[:limit]

    async def overdue(self) -> int:
        return len(await self.list(state="overdue"))

    @staticmethod
    def _row(version: StoredVersion, today: date) -> dict[str, Any]:
        data = dict(version.data or {})
        data.pop("bsn", None)  # a listing names records, not clients
        overdue = data.get("status") in OPEN and data.get("termijn", "9999-12-31") < today.isoformat()
        return {**data, "version": version.version, "overdue": overdue}

    async def adopt_legacy(self, store: Store) -> int:
        """Meldingen received before they had a life cycle (the old table) become Melding records, status ontvangen."""
        rows = await store.fetchall("SELECT melding_id, received_at, sender_did, sender_org, rule, record, description "
                                    "FROM meldingen")
        for melding_id, received_at, did, org, rule, record, description in rows:
            received = date.fromtimestamp(int(received_at))
            data = {"meldingID": melding_id, "record": record, "regel": rule, "omschrijving": description or None,
                    "melder": did, "melderOrganisatie": org, "melderRol": "onbekend",
                    "antwoordAan": {"idType": "DID", "id": did}, "status": "ontvangen",
                    "ontvangen": received.isoformat(), "termijn": self.calendar.next_working_day(received).isoformat()}
            try:
                await self.registers.put("Melding", data, actor=self.actor(), now=int(received_at))
            except ValidationError as exc:
                log.warning("an old melding could not be kept as a record: %s", exc)
                continue
            await store.write([("DELETE FROM meldingen WHERE melding_id = ?", (melding_id,), False)])
        return len(rows)


__all__ = ["MeldingDesk", "answer_address", "OPEN", "FINAL"]
