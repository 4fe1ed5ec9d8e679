"""A record is checked against its kind's schema and stripped of its nulls in one walk (node/store/records.py,
``checked_record``). Specified here for every kind, with records made from the schema itself: what fits comes back
as the record without its nulls (so equal records have equal bytes), and what does not fit is refused naming the
one field that was broken, never with its value."""

from __future__ import annotations

import json
from datetime import timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from keys import cbor
from node.errors import ValidationError
from node.store.records import MELDING_STATUSES, RECORD_TYPES, checked_fields, checked_record, read_record, strip_nulls
from tests.node.kit import sample

BSNS = ("999999990", "111222333", "123456782", "999990019")


def _valid(spec: Any) -> st.SearchStrategy[Any]:
    if isinstance(spec, dict):
        required = {key: _valid(sub) for key, sub in spec.items() if not key.endswith("?")}
        optional = {key[:-1]: st.none() | _valid(sub) for key, sub in spec.items() if key.endswith("?")}
        return st.fixed_dictionaries(required, optional=optional)
    if isinstance(spec, list):
        return st.lists(_valid(spec[0]), max_size=3)
    return {
        "text": st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12),
        "int": st.integers(-(2**53) + 1, 2**53 - 1),
        "bool": st.booleans(),
        "uuid": st.uuids(version=4).map(str),
        "date": st.dates().map(lambda d: d.isoformat()),
        "datetime": st.datetimes(timezones=st.just(timezone.utc)).map(lambda d: d.isoformat()),
        "bsn": st.sampled_from(BSNS),
        "agb": st.from_regex(r"\A[0-9]{8}\Z"),
        "uzovi": st.from_regex(r"\A[0-9]{4}\Z"),
        "hex32": st.binary(min_size=32, max_size=32).map(bytes.hex),
    }[spec]


def _fits(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    """The rules beyond the schema, made true."""
    if kind == "WlzIndicatie":
        record["client"]["bsn"] = record["bsn"]
    if kind == "Melding":
        record["status"] = MELDING_STATUSES[len(record["meldingID"]) % len(MELDING_STATUSES)]
    if kind == "Toestemming" and not strip_nulls(record["ontvanger"]):
        record["ontvanger"]["agb"] = "12345678"
    return record


records = st.sampled_from(sorted(RECORD_TYPES)).flatmap(
    lambda kind: st.tuples(st.just(kind), _valid(RECORD_TYPES[kind].schema).map(lambda r: _fits(kind, r))))


def _leaves(value: Any, path: str = "") -> list[str]:
    """The paths of every scalar in ``value``, as the error names them (a.b, a[0].b)."""
    if isinstance(value, dict):
        return [leaf for key, item in value.items() if item is not None
                for leaf in _leaves(item, f"{path}.{key}" if path else key)]
    if isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, f"{path}[{i}]")]
    return [path]


def _set(record: dict[str, Any], path: str, new: Any) -> None:
    steps = path.replace("[", ".[").split(".")
    where: Any = record
    for step in steps[:-1]:
        where = where[int(step[1:-1])] if step.startswith("[") else where[step]
    last = steps[-1]
    if last.startswith("["):
        where[int(last[1:-1])] = new
    else:
        where[last] = new


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_a_record_that_fits_comes_back_without_its_nulls(kind_record: tuple[str, dict[str, Any]]) -> None:
    kind, record = kind_record
    stored = checked_record(kind, record)
    assert stored == strip_nulls(record)
    assert cbor.encode(stored) == cbor.encode(strip_nulls(record))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records, st.data())
def test_a_broken_field_is_named_and_its_value_never_repeated(kind_record: tuple[str, dict[str, Any]], data: st.DataObject) -> None:
    kind, record = kind_record
    path = data.draw(st.sampled_from(_leaves(record)))
    _set(record, path, 1.5)  # no scalar of any schema is a float
    with pytest.raises(ValidationError) as refused:
        checked_record(kind, record)
    assert refused.value.field == path
    assert str(refused.value) in (f"{path} is not a valid " + t for t in ("text", "int", "bool", "uuid", "date",
                                                                          "datetime", "bsn", "agb", "uzovi", "hex32"))
    assert "1.5" not in str(refused.value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records, st.data())
def test_a_required_field_left_out_or_null_is_named(kind_record: tuple[str, dict[str, Any]], data: st.DataObject) -> None:
    kind, record = kind_record
    required = [key for key in RECORD_TYPES[kind].schema if not key.endswith("?")]
    name = data.draw(st.sampled_from(required))
    if data.draw(st.booleans()):
        del record[name]
    else:
        record[name] = None
    with pytest.raises(ValidationError, match=f"^{name} is required$") as refused:
        checked_record(kind, record)
    assert refused.value.field == name


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records, st.data())
def test_what_a_node_acts_on_of_a_signed_record_is_the_fields_it_was_shown_as_their_schema_has_them(
        kind_record: tuple[str, dict[str, Any]], data: st.DataObject) -> None:
    """``checked_fields``: a template may show some fields only; a field this version does not know is refused."""
    kind, record = kind_record
    names = sorted(record)
    shown = data.draw(st.lists(st.sampled_from(names), unique=True)) if names else []
    projected = {name: record[name] for name in shown}
    expected = strip_nulls({name: record[name] for name in shown})
    assert checked_fields(kind, projected, ()) == expected
    later = dict(projected, veldVanEenLatereVersie=[1.5])
    with pytest.raises(ValidationError, match="^record has field.s. this version does not know: veldVanEenLatereVersie$"):
        checked_fields(kind, later, ())
    assert checked_fields(kind, later, (), unknown_left_out=True) == expected
    needed = data.draw(st.sampled_from(names))
    if needed in expected:
        assert checked_fields(kind, projected, (needed,)) == expected
    else:
        with pytest.raises(ValidationError, match=f"^{needed} is required$"):
            checked_fields(kind, projected, (needed,))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records, st.data())
def test_a_broken_field_of_what_a_node_acts_on_is_named_and_its_value_never_repeated(
        kind_record: tuple[str, dict[str, Any]], data: st.DataObject) -> None:
    kind, record = kind_record
    path = data.draw(st.sampled_from(_leaves(record)))
    _set(record, path, 1.5)
    with pytest.raises(ValidationError) as refused:
        checked_fields(kind, record, ())
    assert refused.value.field == path and "1.5" not in str(refused.value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records, st.data())
def test_a_whole_record_of_a_later_version_reads_as_this_version_knows_it(
        kind_record: tuple[str, dict[str, Any]], data: st.DataObject) -> None:
    """``read_record``: what ``checked_record`` takes, plus fields a later version added (left out); still every
    required field, and still the rules beyond the schema."""
    kind, record = kind_record
    assert read_record(kind, dict(record, veldVanEenLatereVersie={"x": 1.5})) == checked_record(kind, record)
    required = [key for key in RECORD_TYPES[kind].schema if not key.endswith("?")]
    name = data.draw(st.sampled_from(required))
    with pytest.raises(ValidationError, match=f"^{name} is required$"):
        read_record(kind, {key: value for key, value in record.items() if key != name})


@given(st.one_of(st.none(), st.integers(), st.text(), st.lists(st.integers()), st.binary()))
def test_what_a_node_acts_on_is_an_object_or_refused(value: Any) -> None:
    with pytest.raises(ValidationError, match="^record must be an object$"):
        checked_fields("Melding", value, ())


def test_what_is_not_an_object_a_list_or_a_known_field_is_refused_by_where_it_is() -> None:
    record = sample("wlzIndicaties", 0)
    cases = [
        ([], "record must be an object", None),
        ({**record, "extra": 1, "another": None}, "record has unknown field(s): another, extra", None),
        ({**record, "a\nb": 1}, "record has unknown field(s): a\\u000ab", None),  # a caller's name, written out
        ({**record, "client": "999999990"}, "client must be an object", "client"),
        ({**record, "client": {**record["client"], "bsn": None}}, "client.bsn is required", "client.bsn"),
        ({**record, "geindiceerdZorgzwaartepakket": {"zzpCode": "x"}}, "geindiceerdZorgzwaartepakket must be a list",
         "geindiceerdZorgzwaartepakket"),
        ({**record, "beperking": ["a"] * 1001}, "beperking must be a list", "beperking"),
        ({**record, "beperking": ["a", None]}, "beperking[1] is not a valid text", "beperking[1]"),
    ]
    for value, message, field in cases:
        with pytest.raises(ValidationError) as refused:
            checked_record("WlzIndicatie", value)
        assert (str(refused.value), refused.value.field) == (message, field)


@settings(max_examples=20, deadline=None)
@given(_valid(RECORD_TYPES["Toestemming"].schema))
def test_a_consent_whose_receiver_names_no_party_is_refused(consent: dict[str, Any]) -> None:
    """Its receiver's fields all null: it was taken, and stored naming no one (the nulls were stripped after the
    check that it names someone)."""
    consent["ontvanger"] = {"agb": None, "uzovi": None}
    with pytest.raises(ValidationError, match="^ontvanger must name the party"):
        checked_record("Toestemming", consent)


def test_text_is_unicode_a_lone_surrogate_is_not() -> None:
    """JSON can spell half of a surrogate pair (\\ud800): no character, no UTF-8, so never encodable to be signed."""
    record = sample("wlzIndicaties", 0)
    record["besluitnummer"] = json.loads('"B-\\ud800"')
    with pytest.raises(ValidationError) as refused:
        checked_record("WlzIndicatie", record)
    assert (str(refused.value), refused.value.field) == ("besluitnummer is not a valid text", "besluitnummer")
    record["besluitnummer"] = json.loads('"B-\\ud83d\\ude00-\\u00e9"')  # a pair is one character
    assert checked_record("WlzIndicatie", record)["besluitnummer"] == "B-\U0001f600-\u00e9"


def test_an_id_with_a_line_break_after_it_is_no_id() -> None:
    """``$`` matches before a final line break: "<uuid>\\n" passed, a second record whose id looks like the first's."""
    record = sample("wlzIndicaties", 0)
    record["wlzIndicatieID"] += "\n"
    with pytest.raises(ValidationError, match="^wlzIndicatieID is not a valid uuid$"):
        checked_record("WlzIndicatie", record)


ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6) | st.binary(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=14) | st.integers(), inner, max_size=5),
    max_leaves=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_valid(RECORD_TYPES["Toestemming"].schema), st.sampled_from(sorted(RECORD_TYPES["Toestemming"].schema)), ANY_VALUE)
def test_whether_what_a_client_signed_is_a_consent_is_a_yes_or_no(consent: dict[str, Any], field: str,
                                                                   value: Any) -> None:
    """A source and a party read a consent only once it fits (``fits``), and decide before that whether to ask its
    signer about it (``not_asked_after``): what a client signed, any shape at any field, gets an answer, never an
    exception (a number for ``bronnen`` made a source's decision fail)."""
    from node.policy.consent import not_asked_after
    from node.store.records import fits
    from protocol.records import RecordVersion

    consent[field.rstrip("?")] = value
    assert fits("Toestemming", consent) in (True, False)
    assert not_asked_after(RecordVersion("Toestemming", "x", 1, "did:key:z", 0, False, consent)) in (True, False)
    assert fits("Toestemming", value) in (True, False)
