"""iWlz record types, their validation, and which role holds which register.

Field names follow the iWlz GraphQL schemas (Indicatieregister v1.6.4,
Bemiddelingsregister v1.1.0, the Leveringsregister draft). A schema maps a
field to its type; a trailing ``?`` marks a field that may be absent or null.
Unknown fields are refused. Error messages name the field, never its value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable, Final

from keys import KeysError, check_agb, check_bsn, check_uzovi
from node.errors import ValidationError, shown
from protocol.messages import UUID4

Schema = dict[str, Any]

ZZP: Final[Schema] = {"zzpCode": "text", "ingangsdatum": "date", "einddatum?": "date", "financiering": "text"}
CLIENT_FULL: Final[Schema] = {"clientID": "uuid", "bsn": "bsn", "geboorteDatum": "date", "geslacht": "text",
                              "geslachtsnaam": "text", "contactPersoon?": ["text"]}
WLZ_INDICATIE: Final[Schema] = {
    "wlzIndicatieID": "uuid", "bsn": "bsn", "besluitnummer": "text", "soortWlzindicatie": "text",
    "afgiftedatum": "date", "ingangsdatum": "date", "einddatum?": "date", "meerzorg?": "bool",
    "initieelVerantwoordelijkZorgkantoor": "uzovi", "vervaldatum?": "date", "grondslag": ["text"],
    "geindiceerdZorgzwaartepakket": [ZZP], "beperking": ["text"], "stoornis": ["text"], "client": CLIENT_FULL,
}
BEMIDDELINGSPECIFICATIE: Final[Schema] = {
    "bemiddelingspecificatieID": "uuid", "leveringsvorm": "text", "zzpCode": "text",
    "toewijzingIngangsdatum": "date", "toewijzingEinddatum?": "date", "instelling": "agb",
    "uitvoerendZorgkantoor": "uzovi", "vaststellingMoment": "datetime", "percentage?": "int",
    "pgbPercentage?": "int", "soortToewijzing": "text",
}
REGIEHOUDER: Final[Schema] = {"regiehouderID": "uuid", "instelling": "agb", "ingangsdatum": "date",
                              "einddatum?": "date", "regierol": "text"}
OVERDRACHT: Final[Schema] = {"overdrachtID": "uuid", "verantwoordelijkZorgkantoor": "uzovi", "overdrachtDatum": "date",
                             "verhuisDatum": "date", "overdrachtspecificatie": [{"leveringsstatus": "text"}]}
BEMIDDELING: Final[Schema] = {
    "bemiddelingID": "uuid", "client": {"clientID": "uuid", "bsn": "bsn"}, "wlzIndicatieID": "uuid",
    "verantwoordelijkZorgkantoor": "uzovi", "verantwoordelijkheidIngangsdatum": "date",
    "verantwoordelijkheidEinddatum?": "date", "bemiddelingspecificatie": [BEMIDDELINGSPECIFICATIE],
    "regiehouder": [REGIEHOUDER], "overdracht?": OVERDRACHT,
}
LEVERING: Final[Schema] = {
    # Care a provider delivers under the Bemiddelingspecificatie that assigned it: its periods (start, end) and
    # the requests (verzoeken) it makes to other providers to deliver part of it.
    "leveringID": "uuid", "bemiddelingspecificatieID": "uuid", "wlzIndicatieID?": "uuid", "bsn": "bsn",
    "zorgkantoor": "uzovi", "zzpCode?": "text", "leveringsvorm?": "text",
    "leveringperiodes": [{"ingangsdatum": "date", "einddatum?": "date", "reden?": "text"}],
    "verzoeken": [{"verzoekID?": "uuid", "aanbieder?": "agb", "soort": "text", "datum": "date", "toelichting?": "text"}],
}
VERZOEK_ANTWOORD: Final[Schema] = {
    # A provider's answer to a verzoek another provider sent it (NIEUW_VERZOEKAANBIEDER_AANBIEDER).
    "antwoordID": "uuid", "verzoekID": "uuid", "leveringID": "uuid", "aanvrager": "agb", "bsn": "bsn",
    "status": "text", "reden?": "text", "datum": "date",
}
EIGEN_BIJDRAGE: Final[Schema] = {
    # Ours: no public iWlz schema exists (docs/DECISIONS.md). The CAK derives it from the care periods it hears of.
    "eigenBijdrageID": "uuid", "bsn": "bsn", "wlzIndicatieID?": "uuid", "zorgkantoor": "uzovi",
    "periode": {"ingangsdatum": "date", "einddatum?": "date"}, "bedragPerMaand": "int",
    "zorgperiodes": [{"leveringID": "uuid", "aanbieder": "agb", "ingangsdatum": "date", "einddatum?": "date"}],
    "status": "text",
}
TOESTEMMING: Final[Schema] = {
    # A client's consent: who (ontvanger, by identifier or did) may use which templates at which sources
    # (bronnen: "kvk:…", "uzovi:…", "agb:…" or a did), for what (doel), until when (geldigTot).
    "toestemmingID": "uuid", "bsn": "bsn",
    "ontvanger": {"agb?": "agb", "uzovi?": "uzovi", "kvk?": "text", "did?": "text"},
    "bronnen": ["text"], "templates": ["text"], "doel": "text", "geldigTot": "date",
    # The key of his certificate's BSN commitment: a source checks the consent's signer with it.
    "bsnSleutel?": "hex32",
    # A machtiging's (bronnen "*"): where his node answers whether it stands, for a source it was never withdrawn at.
    "endpoint?": "text",
}
MELDING: Final[Schema] = {
    # A melding (IWLZFOUTMELDING) a source received about one of its records, with its life cycle: status
    # ontvangen, in_behandeling, afgehandeld or afgewezen, and the deadline of one working day (termijn). The bsn
    # of the record it is about ties it to that client's access log; it is no lookup key, so no query by bsn finds it.
    "meldingID": "uuid", "record": "text", "regel": "text", "omschrijving?": "text", "bsn?": "bsn",
    "melder": "text", "melderOrganisatie": "text", "melderRol": "text",
    "antwoordAan": {"idType": "text", "id": "text", "endpoint?": "text"},
    "status": "text", "reden?": "text", "ontvangen": "date", "termijn": "date", "afgehandeldOp?": "date",
}
MELDING_STATUSES: Final = ("ontvangen", "in_behandeling", "afgehandeld", "afgewezen")
ZORGAANBOD: Final[Schema] = {
    "zorgaanbodID": "uuid", "instelling": "agb", "regio": "uzovi", "zzpCodes": ["text"], "leveringsvormen": ["text"],
    "vrijeCapaciteit": "int", "peildatum": "date",
}


@dataclass(frozen=True, slots=True)
class RecordType:
    kind: str
    register: str
    source_role: str
    schema: Schema
    id_field: str
    retention_years: int | None
    end_field: str | None

    def record_id(self, data: dict[str, Any]) -> str:
        return str(data[self.id_field])

    def bsn(self, data: dict[str, Any]) -> str | None:
        return bsn_of(data)

    def ended(self, data: dict[str, Any]) -> str | None:
        """The date the record ended (its end field; of a list, the last, and None while any item is open)."""
        if self.end_field is None:
            return None
        if "[]" in self.end_field:
            items = values_at(data, self.end_field.split("[]")[0] + "[]")
            ends = [values_at(item, self.end_field.split("[].", 1)[1]) for item in items]
            return max(e[0] for e in ends) if ends and all(ends) else None
        found = values_at(data, self.end_field)
        return str(found[0]) if found else None

    def retain_until(self, data: dict[str, Any], years: int | None = None) -> str | None:
        """The date after which all versions may be purged (end + retention), or None while open-ended."""
        years = self.retention_years if years is None else years
        end = self.ended(data)
        return None if years is None or end is None else add_years(date.fromisoformat(end), years)


def bsn_of(data: dict[str, Any]) -> str | None:
    """The client a record (or a view of one, such as a Bemiddelingspecificatie) is about."""
    value = data.get("bsn") or (data.get("client") or {}).get("bsn")
    return value if isinstance(value, str) else None


def add_years(day: date, years: int) -> str:
    try:
        return day.replace(year=day.year + years).isoformat()
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28).isoformat()


_HEX32: Final = re.compile(r"[0-9a-f]{64}")


def day_of(now: int) -> str:
    """The calendar day (UTC, ISO) a moment falls on: what a record's dates, such as a consent's geldigTot, are
    compared with."""
    return datetime.fromtimestamp(now, timezone.utc).date().isoformat()


def bsn_key_of(consent: dict[str, Any]) -> bytes | None:
    """The key of its signer's BSN commitment a consent carries (``bsnSleutel``), if it is one."""
    key = consent.get("bsnSleutel")
    return bytes.fromhex(key) if isinstance(key, str) and _HEX32.fullmatch(key) else None


# A machtiging is a consent of one form: to a person (the did of his own client's node), for what the client himself
# may read (his data, his access log), at every source of his records ("*"), with this doel.
MACHTIGING: Final = "vertegenwoordiging"
EVERY_SOURCE: Final = "*"
MACHTIGING_COVERS: Final = ("CLIENT-EIGEN-GEGEVENS", "CLIENT-ACCESS-LOG")


def is_machtiging(consent: dict[str, Any]) -> bool:
    """A consent to a person, by did, to act for the client."""
    grantee = consent.get("ontvanger")
    return consent.get("doel") == MACHTIGING and isinstance(grantee, dict) and set(grantee) == {"did"}


def values_at(data: Any, path: str) -> list[Any]:
    """All values at a dotted path; ``name[]`` steps into every item of a list."""
    current = [data]
    for step in path.split("."):
        many = step.endswith("[]")
        name = step[:-2] if many else step
        nxt = []
        for item in current:
            value = item.get(name) if isinstance(item, dict) else None
            if value is None:
                continue
            nxt.extend(value if many and isinstance(value, list) else [value])
        current = nxt
    return current


RECORD_TYPES: Final[dict[str, RecordType]] = {
    t.kind: t
    for t in (
        RecordType("WlzIndicatie", "indicatie", "ciz", WLZ_INDICATIE, "wlzIndicatieID", 5, "einddatum"),
        RecordType("Bemiddeling", "bemiddeling", "zorgkantoor", BEMIDDELING, "bemiddelingID", 7, "verantwoordelijkheidEinddatum"),
        RecordType("Levering", "levering", "zorgaanbieder", LEVERING, "leveringID", 7, "leveringperiodes[].einddatum"),
        RecordType("VerzoekAntwoord", "levering", "zorgaanbieder", VERZOEK_ANTWOORD, "antwoordID", 7, "datum"),
        RecordType("EigenBijdrage", "eigenbijdrage", "cak", EIGEN_BIJDRAGE, "eigenBijdrageID", 7, "periode.einddatum"),
        RecordType("Zorgaanbod", "zorgaanbod", "zorgaanbieder", ZORGAANBOD, "zorgaanbodID", None, None),
        RecordType("Toestemming", "toestemming", "client", TOESTEMMING, "toestemmingID", 7, "geldigTot"),
        RecordType("Melding", "meldingen", "*", MELDING, "meldingID", 7, "afgehandeldOp"),
    )
}


def registers_for(role: str) -> list[str]:
    return list(dict.fromkeys(t.register for t in RECORD_TYPES.values() if t.source_role == role))


def kinds_for(role: str) -> list[str]:
    return [t.kind for t in RECORD_TYPES.values() if t.source_role == role]


def _identifier(check: Callable[[object], str]) -> Callable[[Any], bool]:
    def ok(value: Any) -> bool:
        try:
            check(value)
        except KeysError:
            return False
        return True

    return ok


def _is_date(value: Any) -> bool:
    try:
        return isinstance(value, str) and len(value) == 10 and bool(date.fromisoformat(value))
    except ValueError:
        return False


def _is_datetime(value: Any) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
    except ValueError:
        return False


def is_text(value: Any) -> bool:
    """1 to 1,000 characters of Unicode. JSON can spell a lone surrogate (\\ud800), which is no character and has no
    UTF-8: such a record could never be encoded to be signed, and made its whole import batch fail."""
    if not isinstance(value, str) or not 0 < len(value) <= 1000:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


SCALARS: Final[dict[str, Callable[[Any], bool]]] = {
    "text": is_text,
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**53) < v < 2**53,
    "bool": lambda v: isinstance(v, bool),
    "uuid": lambda v: isinstance(v, str) and bool(UUID4.fullmatch(v)),
    "date": _is_date,
    "datetime": _is_datetime,
    "bsn": _identifier(check_bsn),
    "agb": _identifier(check_agb),
    "uzovi": _identifier(check_uzovi),
    "hex32": lambda v: isinstance(v, str) and bool(_HEX32.fullmatch(v)),
}


Checker = Callable[[Any], Any]  # a value that fits -> the value with its nulls left out; raises _Misfit
_COMPILED: dict[int, Checker] = {}


class _Misfit(Exception):
    """A value that does not fit its schema, on its way up to the record: each level it passes adds its step of
    the path (a field's name, a list's [index]), so a record that fits builds no path at all."""

    def __init__(self, says: str) -> None:
        self.says = says  # what follows the path in the message
        self.steps: list[str] = []

    def error(self) -> ValidationError:
        path = ""
        for step in reversed(self.steps):
            path += step if step.startswith("[") or not path else f".{step}"
        return ValidationError(f"{path or 'record'}{self.says}", field=path or None)


def _compile(spec: Any) -> Checker:
    """A checker for one schema node, built once."""
    if isinstance(spec, dict):
        fields = [(key.rstrip("?"), key.endswith("?"), _compile(sub)) for key, sub in spec.items()]
        names = frozenset(name for name, _, _ in fields)

        def check_object(value: Any) -> dict[str, Any]:
            if type(value) is not dict:
                raise _Misfit(" must be an object")
            if not names.issuperset(value):
                # The caller's own names, shown back: a lone surrogate or a line break in one is written out
                raise _Misfit(f" has unknown field(s): {', '.join(sorted(shown(str(key)) for key in set(value) - names))}")
            out = {}
            for name, optional, check in fields:
                item = value.get(name)
                try:
                    if item is None:
                        if not optional:
                            raise _Misfit(" is required")
                        continue
                    out[name] = check(item)
                except _Misfit as misfit:
                    misfit.steps.append(name)
                    raise
            return out

        return check_object
    if isinstance(spec, list):
        check_item = _compile(spec[0])

        def check_list(value: Any) -> list[Any]:
            if type(value) is not list or len(value) > 1000:
                raise _Misfit(" must be a list")
            out = []
            for i, item in enumerate(value):
                try:
                    out.append(check_item(item))
                except _Misfit as misfit:
                    misfit.steps.append(f"[{i}]")
                    raise
            return out

        return check_list
    test = SCALARS[spec]
    says = f" is not a valid {spec}"

    def check_scalar(value: Any) -> Any:
        if not test(value):
            raise _Misfit(says)
        return value

    return check_scalar


def _checker(spec: Any) -> Checker:
    """The checker of a schema node, compiled once (the schemas are module constants: their ids do not change)."""
    check = _COMPILED.get(id(spec))
    if check is None:
        check = _COMPILED[id(spec)] = _compile(spec)
    return check


def checked(schema: Schema, value: Any) -> Any:
    """``value`` as ``schema`` has it: its absent optional fields (nulls) left out, so that equal records have
    equal bytes, in one walk with the check. Raises ValidationError naming the first field that does not fit."""
    try:
        return _checker(schema)(value)
    except _Misfit as misfit:
        raise misfit.error() from None


# What a node is shown of a record besides the records themselves: a Bemiddelingspecificatie, with the client, the
# indicatie and the zorgkantoor of its Bemiddeling (policy.pdp's view).
VIEWS: Final[dict[str, Schema]] = {
    "Bemiddelingspecificatie": {**BEMIDDELINGSPECIFICATIE, **{key: BEMIDDELING[key] for key in (
        "bemiddelingID", "wlzIndicatieID", "verantwoordelijkZorgkantoor", "client")}},
}


def checked_fields(kind: str, data: Any, needed: tuple[str, ...], *, unknown_left_out: bool = False) -> dict[str, Any]:
    """What a node acts on of a record another node signed: each field shown as the schema has that field, with
    the ``needed`` ones among them; a source's template may show only some fields, so the record is not held to
    the schema whole. A field this version does not know is refused (what it does not understand might change what
    the record means, as a cancellation would a Levering's), or with ``unknown_left_out`` left out, for a record
    only shown. Raises ValidationError naming the first field that does not fit, never its value."""
    if type(data) is not dict:
        raise ValidationError("record must be an object")
    schema = VIEWS[kind] if kind in VIEWS else RECORD_TYPES[kind].schema
    names = frozenset(key.rstrip("?") for key in schema)
    if not unknown_left_out and not names.issuperset(data):
        unknown = ", ".join(sorted(shown(str(key)) for key in set(data) - names))
        raise ValidationError(f"record has field(s) this version does not know: {unknown}")
    out: dict[str, Any] = {}
    for key, spec in schema.items():
        name = key.rstrip("?")
        value = data.get(name)
        if value is None:
            if name in needed:
                raise ValidationError(f"{name} is required", field=name)
            continue
        try:
            out[name] = _checker(spec)(value)
        except _Misfit as misfit:
            misfit.steps.append(name)
            raise misfit.error() from None
    return _beyond_the_schema(kind, out)


def checked_record(kind: str, data: Any) -> dict[str, Any]:
    """A record of ``kind`` as it is stored: checked against its schema and the rules beyond it, with its nulls
    left out. Raises ValidationError naming the field that does not fit."""
    record_type = RECORD_TYPES.get(kind)
    if record_type is None:
        raise ValidationError(f"unknown record type {kind!r}; known: {', '.join(RECORD_TYPES)}")
    return _beyond_the_schema(kind, checked(record_type.schema, data))


def _beyond_the_schema(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """The rules a record of ``kind`` keeps beyond its schema, for the fields it has."""
    if kind == "WlzIndicatie" and "client" in data and "bsn" in data and data["client"]["bsn"] != data["bsn"]:
        raise ValidationError("client.bsn must equal bsn", field="client.bsn")
    if kind == "Melding" and "status" in data and data["status"] not in MELDING_STATUSES:
        raise ValidationError(f"status must be one of {', '.join(MELDING_STATUSES)}", field="status")
    if kind == "Toestemming" and "ontvanger" in data and not data["ontvanger"]:
        raise ValidationError("ontvanger must name the party (agb, uzovi, kvk or did)", field="ontvanger")
    return data


def read_record(kind: str, data: Any) -> dict[str, Any]:
    """A whole record of ``kind`` another node signed, to be shown as this version knows it: every field it knows as
    the schema has it, every required one there, and the fields a later version added left out."""
    return checked_fields(kind, data, tuple(key for key in RECORD_TYPES[kind].schema if not key.endswith("?")),
                          unknown_left_out=True)


def fits(kind: str, data: Any) -> bool:
    """Whether ``data`` is a record of ``kind`` as ``checked_record`` takes it: what a client signed is read only then."""
    try:
        checked_record(kind, data)
    except ValidationError:
        return False
    return True


def validate_record(kind: str, data: Any) -> RecordType:
    checked_record(kind, data)
    return RECORD_TYPES[kind]


_JSON_SCALARS: Final[dict[str, dict[str, Any]]] = {
    "text": {"type": "string", "minLength": 1, "maxLength": 1000},
    "int": {"type": "integer", "minimum": -(2**53) + 1, "maximum": 2**53 - 1},
    "bool": {"type": "boolean"},
    "uuid": {"type": "string", "pattern": UUID4.pattern, "description": "a lowercase UUID v4"},
    "date": {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
    "datetime": {"type": "string", "format": "date-time", "description": "with a time zone"},
    "bsn": {"type": "string", "pattern": r"^\d{9}$", "description": "9 digits that pass the 11-proef"},
    "agb": {"type": "string", "pattern": r"^\d{8}$", "description": "an AGB code: 8 digits"},
    "uzovi": {"type": "string", "pattern": r"^\d{4}$", "description": "a UZOVI code: 4 digits"},
    "hex32": {"type": "string", "pattern": r"^[0-9a-f]{64}$", "description": "32 bytes as lowercase hex"},
}


def _json_schema(spec: Any) -> dict[str, Any]:
    if isinstance(spec, dict):
        return {"type": "object", "additionalProperties": False,
                "properties": {key.rstrip("?"): _json_schema(sub) if not key.endswith("?")
                               else {"anyOf": [_json_schema(sub), {"type": "null"}]} for key, sub in spec.items()},
                "required": [key for key in spec if not key.endswith("?")]}
    if isinstance(spec, list):
        return {"type": "array", "maxItems": 1000, "items": _json_schema(spec[0])}
    return dict(_JSON_SCALARS[spec])


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a record type, made from the same schema the node validates with (optional fields
    may also be null; checks beyond the schema are in its description)."""
    record_type = RECORD_TYPES.get(kind)
    if record_type is None:
        raise ValidationError(f"unknown record type {kind!r}; known: {', '.join(RECORD_TYPES)}")
    schema = _json_schema(record_type.schema)
    extra = " client.bsn must equal bsn." if kind == "WlzIndicatie" else ""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": kind,
            "description": f"A {kind} record as `iwlz record put HOME {kind} FILE` takes it, held in the "
                           f"{record_type.register} register of a {record_type.source_role} node; its id is "
                           f"{record_type.id_field}.{extra}", **schema}


# Fields that identify or describe a person: shown to people only when they ask (iwlz --show-personal-data).
PERSONAL_FIELDS: Final = frozenset({"bsn", "geboorteDatum", "geslachtsnaam", "geslacht", "contactPersoon", "clientID"})


def masked(value: Any) -> Any:
    """``value`` with every personal field's value replaced by a mask."""
    if isinstance(value, dict):
        return {k: ("***" if k in PERSONAL_FIELDS and v is not None else masked(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def strip_nulls(value: Any) -> Any:
    """Drop absent optional fields so that equal records have equal bytes."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


__all__ = ["RecordType", "RECORD_TYPES", "checked_record", "checked_fields", "read_record", "validate_record", "checked", "is_text", "registers_for", "kinds_for", "strip_nulls",
           "json_schema", "PERSONAL_FIELDS", "masked", "values_at", "add_years", "MELDING_STATUSES", "bsn_of"]
